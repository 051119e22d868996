"""Serial tasks with learned masked-diffusion models: exact accuracy vs sampling steps T and vs size n for a
fixed-depth, a looped, a recurrent and a chain-of-thought model, and a fixed-depth continuous diffusion over the
quantized answer (`diffserial.studies.serial_accuracy`).

    python sample.py --config configs/serial_accuracy.py --workdir runs/serial_accuracy          # small default
    python sample.py --config configs/serial_accuracy.py:paper --workdir runs/serial_paper       # accelerator
    python sample.py --config configs/serial_accuracy.py --config.tasks="('rule110',)" --config.sizes.rule110="(2,4,6)"

The argument after ":" is the scale: "small" (default: Rule 110 at n = 2, 6 steps on 16-cell rows, the A5
word problem over two generators (a5_gen) at n = 4, 16 and the majority control at n = 8, 32, each with the
fixed-depth transformer, its supervised baseline and chain of thought, 800 training steps of batch 64 per
model (3200 on a5_gen), 512 seeds, the topk_confidence sampler; measured 13 min 25 s wall / 23 CPU-min on 2
idle cores; README study 5) or "paper" (ten tasks, rule110_cell at n = 4, 8, 16 and a5_gen up to n = 64 among
them, with more sizes, the
looped, recurrent and continuous families too, width 256 and depth 4, 20k steps at batch 512, 16384 seeds:
meant for an accelerator).

Expected device time of :paper: not measured; `serial_accuracy.flop_estimate` counts 4.1e18 FLOPs of
training and 4.7e17 of sampling, about 13 device-hours at a sustained 100 TFLOP/s (~20% of an H100's dense
TF32 peak), or about 24 minutes on a 32-chip pod slice at the same rate per chip; an estimate from counted
FLOPs, not a measurement (no accelerator was lent to the session that wrote it). The small default counts
3.0e13 FLOPs (2.6e13 of training). Every field can be
overridden with --config.FIELD=VALUE; config.train holds the optimizer and batch of each training run
(`configs/serial_train.py`), config.models the networks' attributes.
"""

import ml_collections

from configs import is_paper_scale, serial_train

def get_config(scale: str = "small") -> ml_collections.ConfigDict:
    paper = is_paper_scale(scale)
    c = ml_collections.ConfigDict()
    c.study = "serial_accuracy"
    c.scale = "paper" if paper else "small"  # recorded in config.json; choose it with the ":" argument
    c.seed = 0
    # Two inherently serial tasks and a TC0 control, each at a size the fixed-depth transformer learns and one
    # past it (README, study 5): rule110 (P-complete; n automaton steps on rows of ca_width cells, 2^16
    # prompts), a5_gen (NC1-complete; the product of n letters over two generators of A5, 2^n prompts) and
    # majority (TC0).
    c.tasks = (("rule110", "rule110_cell", "a5_gen", "circuit_value", "arithmetic_circuit", "billiards", "s5",
                "billiards_free_flight", "majority", "parity") if paper
               else ("rule110", "a5_gen", "majority"))
    sizes = {  # config.sizes.TASK: the sizes n of each task (--config.sizes.rule110="(2,4,6)")
        "parity": (4, 8), "majority": (8, 32), "sum_mod": (8, 32), "s5": (2, 8), "a5": (2, 8),
        "s5_gen": (4, 16), "a5_gen": (4, 16), "circuit_value": (1, 4), "arithmetic_circuit": (2, 4),
        "billiards": (2, 4), "billiards_free_flight": (2, 4), "rule110": (2, 6), "rule110_cell": (4, 8)}
    paper_sizes = {
        "parity": (8, 16, 32, 64), "majority": (8, 32, 128), "sum_mod": (8, 32, 128), "s5": (2, 4, 8, 16, 32),
        "a5": (2, 4, 8, 16, 32), "s5_gen": (4, 8, 16, 32, 64), "a5_gen": (4, 8, 16, 32, 64),
        "circuit_value": (2, 4, 8, 16), "arithmetic_circuit": (2, 4, 8, 16),
        "billiards": (2, 4, 8), "billiards_free_flight": (2, 4, 8), "rule110": (2, 4, 8, 16),
        "rule110_cell": (4, 8, 16)}
    c.sizes = ml_collections.ConfigDict(paper_sizes if paper else sizes)
    # the fixed-depth transformer, the same network trained supervised (the capacity baseline) and with chain of
    # thought; the paper scale adds the looped and recurrent networks and the continuous diffusion
    c.families = (("transformer", "supervised", "looped", "recurrent", "cot", "continuous") if paper
                  else ("transformer", "supervised", "cot"))
    c.loops_per_n = 0.5  # looped family: loops = max(1, ceil(loops_per_n * n))
    c.circuit_width = 4  # circuit_value, arithmetic_circuit: inputs and gates per layer (n = depth)
    c.circuit_wiring = "absolute"  # circuit_value's prompt layout: "absolute" wire numbers or "relative" offsets
    c.arithmetic_modulus = 7  # arithmetic_circuit: values in Z_p
    c.ca_width = 32 if paper else 16  # rule110: row width (n = automaton steps); 2^16 prompts at 16
    c.billiards_side = 6  # billiards (2-D hard balls, BBMCA): side of the square torus, 2^36 at 6
    width = 256 if paper else 64
    c.models = ml_collections.ConfigDict({
        "transformer": dict(width=width, depth=4 if paper else 2, heads=4, mlp_ratio=4),
        "looped": dict(width=width, loops=2, heads=4, mlp_ratio=4),  # loops overwritten from loops_per_n
        "recurrent": dict(width=width, layers=2 if paper else 1),
    })
    c.train = serial_train.get_config()  # batch, optimizer, logging of each training run
    # batch 64 on CPU: a step of batch 128 takes ~2.4x as long as one of 64 (the activations leave the cache)
    c.train.batch_size = 512 if paper else 64
    c.train.optimizer.lr = 1e-3  # 3e-3 and 1e-2 learned less in 1500-2000 steps (README)
    c.train.optimizer.warmup_steps = 500 if paper else 100
    c.train.optimizer.ema_decay = 0.999 if paper else 0.99  # the sampled EMA must not average the early steps
    c.train.checkpoint_every = 5000 if paper else 10_000
    c.train_steps = 20_000 if paper else 800
    # per-task budgets of the masked families (None: config.train_steps); --config.train_steps_by_task.TASK=STEPS
    c.train_steps_by_task = ml_collections.ConfigDict({task: None for task in sizes})
    if not paper:
        # a5_gen at n = 16, chain of thought: 0.627 exact in 1600 steps, 0.982 in 3200 (README study 5)
        c.train_steps_by_task.a5_gen = 3200
    # confidence-ordered and ancestral (MDLM) masked samplers; the small default runs the first only (time)
    c.samplers = ("topk_confidence", "ancestral") if paper else ("topk_confidence",)
    # family "continuous": continuous diffusion over the quantized answer (paper appendix F.1), sampled at every T
    # in c.steps by these samplers of diffserial.samplers.continuous
    c.continuous_samplers = ("ancestral", "dpm_solver_pp_2m")
    # its DSM training needs more steps: at 2000 it ignores the prompt (chance on 4-bit parity), at 8000 it learns it
    c.continuous_train_steps = 40_000 if paper else 8000
    c.schedule = "linear"
    # clipped to G = generated positions; G itself is always measured
    c.steps = (1, 2, 4, 8, 16, 32, 64) if paper else (1, 4, 16, 64)
    c.n_seeds = 16384 if paper else 512
    c.block_size = 1024 if paper else 512
    c.allow_config_change = False  # resume even if WORKDIR/config.json differs (the old one is kept)
    return c
