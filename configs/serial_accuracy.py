"""Serial tasks with learned masked-diffusion models: exact accuracy vs sampling steps T and vs size n for a
fixed-depth, a looped, a recurrent and a chain-of-thought model, and a fixed-depth continuous diffusion over the
quantized answer (`diffserial.studies.serial_accuracy`).

    python sample.py --config configs/serial_accuracy.py --workdir runs/serial_accuracy          # small default
    python sample.py --config configs/serial_accuracy.py:paper --workdir runs/serial_paper       # accelerator
    python sample.py --config configs/serial_accuracy.py --config.tasks="('parity','s5','circuit_value')"

The argument after ":" is the scale: "small" (default: parity at n = 4 and 8, 2000 steps per model; 9 min
20 s on 2 CPU cores, README) or "paper" (more tasks, bigger n, wider and deeper models, longer training,
more seeds: meant for an accelerator; not run yet).

Expected device time of :paper: not measured (no accelerator run yet); an estimate from the work ratio.
Counting a network call on one sequence as length x width^2 x layers (loops for the looped network, two
directions per GRU layer) and a training example as three calls, training is 47 000 times the small run's
work (which is 91% training) and sampling 3700 times; at 2 CPU cores that would be ~47 000 x 9 min = ~300 days,
so it needs an accelerator. In FLOPs (24 width^2 per token and layer forward, 3 times that to train)
training is ~1e18 FLOP (1 EFLOP) and sampling ~7e15: about 3 h of one chip at a sustained 1e14 FLOP/s
(an assumed rate, not a measured one; these small models may reach less). Every field can be
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
    # parity: CoT = prefix parities (one XOR per step). On CPU budgets (README) n = 4, 8 are learned with and
    # without CoT; at n = 10 only without, at n = 12 by neither: no size separates the families there.
    # s5: NC1-complete word problem (its 120 x 120 table is not learned in a CPU budget); also circuit_value, ...
    c.tasks = ("parity", "s5") if paper else ("parity",)
    c.sizes = (4, 8, 16, 32) if paper else (4, 8)
    c.families = ("transformer", "looped", "recurrent", "cot", "continuous")
    c.loops_per_n = 0.5  # looped family: loops = max(1, ceil(loops_per_n * n))
    c.circuit_width = 4  # circuit_value: inputs and gates per layer (n = depth)
    c.ca_width = 8  # rule110: row width (n = automaton steps)
    width = 256 if paper else 64
    c.models = ml_collections.ConfigDict({
        "transformer": dict(width=width, depth=4 if paper else 2, heads=4, mlp_ratio=4),
        "looped": dict(width=width, loops=2, heads=4, mlp_ratio=4),  # loops overwritten from loops_per_n
        "recurrent": dict(width=width, layers=2 if paper else 1),
    })
    c.train = serial_train.get_config()  # batch, optimizer, logging of each training run
    c.train.batch_size = 1024 if paper else 128
    c.train.optimizer.lr = 1e-3  # 3e-3 and 1e-2 learned less in 1500-2000 steps (README)
    c.train.optimizer.warmup_steps = 500 if paper else 100
    c.train.optimizer.ema_decay = 0.999 if paper else 0.99  # the sampled EMA must not average the early steps
    c.train.checkpoint_every = 5000 if paper else 10_000
    c.train_steps = 50_000 if paper else 2000
    c.samplers = ("topk_confidence", "ancestral")  # confidence-ordered and ancestral (MDLM) masked samplers
    # family "continuous": continuous diffusion over the quantized answer (paper appendix F.1), sampled at every T
    # in c.steps by these samplers of diffserial.samplers.continuous
    c.continuous_samplers = ("ancestral", "dpm_solver_pp_2m")
    # its DSM training needs more steps: at 2000 it ignores the prompt (chance on 4-bit parity), at 8000 it learns it
    c.continuous_train_steps = 50_000 if paper else 8000
    c.schedule = "linear"
    c.steps = (1, 2, 4, 8, 16, 32, 64)  # clipped to G = generated positions; G itself is always measured
    c.n_seeds = 16384 if paper else 2048
    c.block_size = 1024 if paper else 512
    return c
