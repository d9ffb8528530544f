"""`kind: eval`: score a model on a benchmark with the verifiers that give the training rewards."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.config.parts import DataConfig, GenerationConfig, ModelConfig, check_ranges


@dataclass
class VerifierSettings:
    """Which verifier judges the responses; unset fields take the benchmark's defaults (rlvr.eval.benchmarks)."""

    name: str | None = None  # 'math', 'code', or any installed verifier
    options: dict[str, Any] = field(default_factory=dict)  # merged over the benchmark's default options
    # Processes scoring in parallel with a hard per-sample timeout; 0: in this process through the
    # verifier's own batch call (the code verifier runs every program in its sandbox with its own limits).
    workers: int | None = None
    timeout: float = 30.0  # seconds per sample (workers > 0)


@dataclass
class FewShotSettings:
    """Worked examples shown before each problem: chat turns (template: chat) or blocks of text (plain)."""

    count: int = 0
    source: str | None = None  # default: the benchmark itself
    split: str = "train"  # benchmarks with only a test split (math500, humaneval) need another `source`
    # plain template: how one example is written ({prompt}, {response}); examples are separated by a blank line
    example_format: str = "{prompt}\n{response}"


@dataclass
class EvalSettings:
    # 'gsm8k', 'math500', 'humaneval', 'mbpp', 'arith', or a local data file (then verifier.name is required)
    benchmark: str | None = None  # default: data.source
    split: str = "test"
    limit: int | None = None  # only the first N problems
    # Wraps each problem's text (and each few-shot example's) before the template, with either template;
    # e.g. "Complete this Python function:\n```python\n{prompt}```" for HumanEval's function stubs.
    question_format: str = "{prompt}"
    # pass@k and maj@k for each k; samples per problem = max(k). k = [1] alone means greedy only.
    k: list[int] = field(default_factory=lambda: [1])
    greedy: bool = True  # also decode greedily once per problem (the `accuracy` metric)
    out_dir: str = "runs/eval"
    resume: bool = True  # continue an unfinished eval in out_dir (a finished one is only re-reported)
    chunk: int = 16  # problems generated and judged together; progress is saved after each chunk
    progress: bool = True


@dataclass
class EvalConfig:
    kind: Literal["eval"] = "eval"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m-instruct"))
    data: DataConfig = field(default_factory=DataConfig)  # prompting: template, system_prompt, fields, arith
    # Sampling for the pass@k/maj@k samples; the greedy pass uses the same settings at temperature 0.
    generation: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(temperature=0.8, top_p=0.95, max_new_tokens=256, batch_size=16))
    verifier: VerifierSettings = field(default_factory=VerifierSettings)
    few_shot: FewShotSettings = field(default_factory=FewShotSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> None:
        from rlvr.errors import UserError

        check_ranges(self.verifier, "verifier", {"workers": ">=0", "timeout": ">0"})
        check_ranges(self.few_shot, "few_shot", {"count": ">=0"})
        check_ranges(self.eval, "eval", {"limit": ">=1", "chunk": ">=1"})
        if not self.eval.k or min(self.eval.k) < 1:
            raise UserError(f"eval.k: expected a list of sample counts, each 1 or more, got {self.eval.k}")


KINDS = {"eval": EvalConfig}
