"""Benchmark evaluation: score a model (or each checkpoint of a run) with the training verifiers.

    rlvr eval --model smollm2-135m-instruct --benchmark gsm8k --limit 50
    rlvr eval --run runs/sft_arith --benchmark arith
    rlvr eval --compare runs/eval_a runs/eval_b
"""
from rlvr.eval.metrics import maj_at_k, pass_at_k

__all__ = ["maj_at_k", "pass_at_k"]
