"""Train a masked-diffusion predictor on a serial task (`diffserial.serial_tasks`): the sequence is
[prompt, chain of thought (with config.cot), answer]; the prompt is given, the rest is generated.

    python train.py --config configs/serial_train.py --workdir runs/s5_train                  # S5 word, n = 8
    python train.py --config configs/serial_train.py:looped --workdir runs/s5_looped          # or :recurrent
    python train.py --config configs/serial_train.py --config.task_args.n=16 --config.cot=True ...
    python train.py --config configs/serial_train.py:transformer,circuit_value --workdir runs/cvp_train
    python train.py --config configs/serial_train.py:transformer,parity --config.task=serial_continuous ...  # F.1

The argument after ":" is MODEL or MODEL,TASK: MODEL picks the network (transformer | looped | recurrent;
config.model holds that module's attributes, `training.tasks.MASKED_MODELS`), TASK the serial task and its
default size arguments (TASK_ARGS below; config.task_args holds them, each overridable with
--config.task_args.FIELD=VALUE).
"""

import ml_collections

from configs import parity_train

TASK_ARGS = {
    "parity": {"n": 8},
    "majority": {"n": 8},
    "sum_mod": {"n": 8, "m": 5},
    "s5": {"n": 8},
    "a5": {"n": 8},
    "s5_gen": {"n": 16},
    "a5_gen": {"n": 16},
    "rule110": {"width": 8, "steps": 4},
    "circuit_value": {"n_inputs": 4, "width": 4, "depth": 3},
    "do1": {"n_inputs": 4, "width": 4, "depth": 3},
}


def get_config(arg: str = "transformer") -> ml_collections.ConfigDict:
    model, _, task = arg.partition(",")
    task = task or "s5"
    if task not in TASK_ARGS:
        raise ValueError(f"unknown serial task {task!r}; valid: {', '.join(TASK_ARGS)}")
    c = parity_train.get_config(model)
    c.task = "serial"
    del c.n
    c.serial_task = task  # a name in diffserial.serial_tasks.TASKS (sudoku is host-side: not trainable here)
    c.task_args = ml_collections.ConfigDict(TASK_ARGS[task])  # the task's size arguments
    c.cot = False  # train on [prompt, cot, answer] instead of [prompt, answer]
    c.objective = "nelbo"  # nelbo | supervised (all generated positions masked: the baseline of the serial study)
    c.process = "vp_linear"  # forward SDE of --config.task=serial_continuous (the masked task ignores it)
    return c
