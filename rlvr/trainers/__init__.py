"""Trainers, one per config `kind`; imported lazily (DeepSpeed is slow to import)."""
from __future__ import annotations

import importlib

TRAINERS = {
    "sft": "rlvr.trainers.sft:SFTTrainer",
    "rl": "rlvr.trainers.rl:RLTrainer",
    "reward_model": "rlvr.trainers.reward_model:RewardModelTrainer",
    "preference": "rlvr.trainers.preference:PreferenceTrainer",
}


def trainer_for(cfg):
    module, name = TRAINERS[cfg.kind].split(":")
    return getattr(importlib.import_module(module), name)(cfg)
