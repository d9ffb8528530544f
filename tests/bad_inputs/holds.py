"""Bad input that rlvr already answered in one line before the reliability issue: kept so it stays so."""
from tests.bad_inputs import Case

CASES = [
    Case("config-unknown-key", ["train", "c.yaml"], {"c.yaml": "kind: sft\nx: 1\n"},
         error=r"c\.yaml: unknown key 'x'", unchanged=("c.yaml",)),
    Case("config-missing-file", ["train", "nope.yaml"], error=r"nope\.yaml"),
    Case("config-bad-yaml", ["train", "c.yaml"], {"c.yaml": "kind: sft\nmodel: [\n"}, error=r"c\.yaml"),
    Case("config-bad-override", ["train", "c.yaml", "trainer.lr=fast"], {"c.yaml": "kind: sft\n"},
         error=r"trainer\.lr"),
]
