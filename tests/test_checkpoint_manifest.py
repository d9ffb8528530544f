"""Checkpoint manifests against hand-made folders: each kind of damage is found and named, resume takes the
newest intact checkpoint; a full disk becomes one NoSpace; a fresh start begins new metrics."""
from __future__ import annotations

import errno
import hashlib
import json
import re
from pathlib import Path

import pytest

from rlvr import diskspace
from rlvr.errors import UserError
from rlvr.trainers import checkpoint as C
from rlvr.trainers.metrics import MetricsLog, read_metrics

SHARD = "deepspeed/model/state/mp_rank_00_model_states.pt"


def make_checkpoint(folder: Path, step: int = 1, manifest: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / SHARD).parent.mkdir(parents=True)
    (folder / SHARD).write_bytes(b"\x01\x02\x03" * 5000)
    (folder / "rng").mkdir()
    (folder / "rng" / "rank0.pt").write_bytes(b"rng state")
    if manifest:
        C.write_manifest(folder)
    return folder


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    ck = make_checkpoint(tmp_path / "step-000001")
    files = json.loads((ck / C.MANIFEST).read_text())["files"]
    assert sorted(files) == sorted([SHARD, "config.json", "model.safetensors", "rng/rank0.pt",
                                    "trainer_state.json"])
    data = (ck / SHARD).read_bytes()
    assert files[SHARD] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert C.manifest_problems(ck) == []


def test_hashing_in_chunks_gives_the_whole_file_digest(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 3 + b"tail")
    monkeypatch.setattr(C, "CHUNK", 100)  # many chunks and a short last one
    assert C.file_digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage, problem", [
    (lambda ck: (ck / SHARD).unlink(), f"{SHARD} is missing"),
    (lambda ck: (ck / "trainer_state.json").write_text('{"st'),
     r"trainer_state.json has 4 bytes, the manifest says \d+"),
    (lambda ck: (ck / "rng/rank0.pt").write_bytes(b"rng"), r"rng/rank0.pt has 3 bytes, the manifest says 9"),
    (lambda ck: zero_bytes(ck / SHARD, 7000, 64), f"{SHARD} does not match its checksum"),
    (lambda ck: (ck / C.MANIFEST).write_text('{"format": 1, "fi'), "manifest.json is unreadable"),
    (lambda ck: (ck / C.MANIFEST).write_text('{"format": 1}'), "manifest.json is unreadable"),
])
def test_each_kind_of_damage_is_named(tmp_path, damage, problem):
    ck = make_checkpoint(tmp_path / "step-000001")
    damage(ck)
    problems = C.manifest_problems(ck)
    assert len(problems) == 1 and re.fullmatch(problem, problems[0]), problems


def zero_bytes(path: Path, at: int, n: int) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + n] = bytes(n)
    path.write_bytes(bytes(data))


def test_no_manifest_is_none_and_a_file_added_later_is_not_damage(tmp_path):
    assert C.manifest_problems(make_checkpoint(tmp_path / "old", manifest=False)) is None
    ck = make_checkpoint(tmp_path / "new")
    (ck / "notes.txt").write_text("added by hand")
    assert C.manifest_problems(ck) == []


def test_only_checks_the_files_it_is_given(tmp_path):
    ck = make_checkpoint(tmp_path / "step-000001")
    zero_bytes(ck / SHARD, 0, 10)
    assert C.manifest_problems(ck, only=lambda name: "/" not in name) == []
    assert C.manifest_problems(ck) == [f"{SHARD} does not match its checksum"]


# ---- choosing the checkpoint to resume from ---------------------------------------------------------
def run_with(tmp_path, steps, damaged=(), unmanifested=()) -> C.Checkpointer:
    for s in steps:
        ck = make_checkpoint(tmp_path / "checkpoints" / f"step-{s:06d}", s, manifest=s not in unmanifested)
        if s in damaged:
            zero_bytes(ck / SHARD, 100, 8)
    return C.Checkpointer(tmp_path)


def test_resume_takes_the_newest_intact_one_and_sets_the_damaged_aside(tmp_path):
    said = []
    ckp = run_with(tmp_path, [1, 2, 3, 4], damaged=(3, 4))
    chosen = ckp.choose_resume(said.append)
    assert chosen == ckp.root / "step-000002"
    assert said == [f"skipping damaged checkpoint step-{s}: {SHARD} does not match its checksum; "
                    f"set aside as corrupt-step-{s}" for s in ("000004", "000003")]
    assert sorted(p.name for p in ckp.root.iterdir()) == [
        "corrupt-step-000003", "corrupt-step-000004", "step-000001", "step-000002"]
    assert [p.name for p in ckp.complete()] == ["step-000001", "step-000002"]  # never pruned as checkpoints


def test_resume_with_every_checkpoint_damaged_is_one_error_naming_the_folder(tmp_path):
    said = []
    ckp = run_with(tmp_path, [1, 2], damaged=(1, 2))
    with pytest.raises(UserError) as e:
        ckp.choose_resume(said.append)
    assert str(e.value) == (f"{ckp.root}: no intact checkpoint to resume from (2 damaged; the newest, "
                            f"step-000002: {SHARD} does not match its checksum); remove that folder to start "
                            f"the run again")
    assert len(said) == 2
    assert [p.name for p in ckp.complete()] == ["step-000001", "step-000002"]  # left as they were


def test_a_checkpoint_from_before_manifests_is_used_with_a_notice(tmp_path):
    said = []
    ckp = run_with(tmp_path, [1, 2], unmanifested=(1, 2))
    assert ckp.choose_resume(said.append) == ckp.root / "step-000002"
    assert said == ["step-000002 has no manifest.json (written before rlvr checked checkpoints): "
                    "resuming from it unverified"]


def test_no_checkpoint_is_a_fresh_start(tmp_path):
    assert C.Checkpointer(tmp_path).choose_resume(print) is None


def test_retire_and_clean_partial_leave_no_half_checkpoint(tmp_path):
    ckp = run_with(tmp_path, [1, 2])
    ckp.retire(ckp.root / "step-000001")
    (ckp.root / ".old-step-000002").mkdir()  # as a kill in the middle of a removal leaves it
    (ckp.root / ".tmp-step-000003").mkdir()
    ckp.clean_partial()
    assert [p.name for p in ckp.root.iterdir()] == ["step-000002"]


# ---- rlvr eval --run ------------------------------------------------------------------------------------
def test_eval_skips_a_checkpoint_whose_model_files_are_damaged(tmp_path, capsys):
    from rlvr.eval.checkpoints import discover

    run_with(tmp_path, [1, 2, 3, 4], damaged=(3,), unmanifested=(4,))  # 3: only its DeepSpeed state
    zero_bytes(tmp_path / "checkpoints/step-000002/model.safetensors", 10, 4)
    assert [c.name for c in discover(tmp_path)] == ["step-000001", "step-000003", "step-000004"]
    assert capsys.readouterr().out == (f"[rlvr] skipping damaged checkpoint {tmp_path}/checkpoints/"
                                       f"step-000002: model.safetensors does not match its checksum\n")
    zero_bytes(tmp_path / "checkpoints/step-000001/model.safetensors", 10, 4)
    for s in (3, 4):
        (tmp_path / f"checkpoints/step-00000{s}/model.safetensors").unlink()
        C.write_manifest(tmp_path / f"checkpoints/step-00000{s}")
        (tmp_path / f"checkpoints/step-00000{s}/config.json").write_text("{ }")
    with pytest.raises(UserError, match=r"every checkpoint of .* is damaged \(step-000001, step-000002, "
                                        r"step-000003, step-000004\) and there is no final/"):
        discover(tmp_path)


# ---- a full disk ----------------------------------------------------------------------------------------
def test_a_write_that_fails_on_a_full_disk_becomes_nospace_after_cleanup(tmp_path):
    partial = tmp_path / ".tmp-step-000001"
    partial.mkdir()
    with pytest.raises(diskspace.NoSpace) as e:
        with diskspace.writing(partial, cleanup=diskspace.remover(partial)):
            raise RuntimeError("write failed") from OSError(errno.ENOSPC, "No space left on device")
    assert not partial.exists()
    assert str(e.value).startswith(f"no space left on device writing {partial} (")


def test_other_write_errors_go_on_unchanged(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    with pytest.raises(PermissionError):
        with diskspace.writing(partial, cleanup=diskspace.remover(partial)):
            raise PermissionError(errno.EACCES, "denied")
    assert partial.is_dir()  # only a full disk removes the partial output here


def test_told_finds_enospc_down_the_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/x.bin")
        except OSError as inner:
            raise RuntimeError("unexpected pos 92160 vs 92048") from inner
    except RuntimeError as e:
        assert diskspace.is_enospc(e)
        assert diskspace.told(e).startswith("no space left on device writing /data/x.bin")
    assert not diskspace.is_enospc(RuntimeError("unexpected pos"))


# ---- metrics: a fresh start begins new ones, a resume keeps those up to its checkpoint ------------------
def test_a_fresh_start_moves_an_earlier_starts_metrics_aside(tmp_path):
    first = MetricsLog(tmp_path, tensorboard=False)
    first.log(1, {"loss": 3.0})
    first.log(2, {"loss": 2.0})
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out").write_text("earlier")
    again = MetricsLog(tmp_path, tensorboard=False, resume_step=None)
    assert again.moved_aside == ["metrics.jsonl was renamed to metrics.before-restart.jsonl",
                                 "tensorboard was renamed to tensorboard.before-restart"]
    assert (tmp_path / "tensorboard.before-restart" / "events.out").read_text() == "earlier"
    again.log(1, {"loss": 3.5})
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 3.5}]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.before-restart.jsonl")] == [1, 2]


def test_a_resume_keeps_the_metrics_up_to_its_checkpoint(tmp_path):
    first = MetricsLog(tmp_path, tensorboard=False)
    for s in (1, 2, 3):
        first.log(s, {"loss": 1.0 / s})
    resumed = MetricsLog(tmp_path, tensorboard=False, resume_step=2)
    assert resumed.moved_aside == []
    resumed.log(3, {"loss": 0.25})
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5},
                                                        {"step": 3, "loss": 0.25}]


def test_shares_of_the_files_together_check_each_file_once(tmp_path):
    ck = make_checkpoint(tmp_path / "step-000001")
    zero_bytes(ck / SHARD, 0, 4)
    (ck / "rng/rank0.pt").unlink()
    shares = [C.manifest_problems(ck, share=(r, 3)) for r in range(3)]  # five files over three ranks
    assert sorted(p for share in shares for p in share) == [f"{SHARD} does not match its checksum",
                                                            "rng/rank0.pt is missing"]
