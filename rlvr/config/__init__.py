"""Typed run configuration: dataclasses, loaded from YAML, with dotted overrides.

    cfg = load_config("configs/sft_arith.yaml", ["trainer.lr=3e-4", "data.max_samples=200"])

The top-level class is chosen by the file's `kind:`; each kind's dataclasses live in their own module.
"""
from rlvr.config import eval as _eval
from rlvr.config import preference as _preference
from rlvr.config import reward_model as _reward_model
from rlvr.config import rl as _rl
from rlvr.config import sft as _sft
from rlvr.config.loading import (config_from_dict, load_config, parse_override, read_yaml, save_config,
                                 to_dict)
from rlvr.config.parts import (ArithConfig, DataConfig, DeepSpeedConfig, FieldsConfig, GenerationConfig,
                               LoggingConfig, ModelConfig, TinyModelConfig)
from rlvr.config.sft import GenerateConfig, SFTConfig, SFTTrainerConfig

# kind -> top-level config class
KINDS: dict[str, type] = {**_sft.KINDS, **_rl.KINDS, **_reward_model.KINDS, **_preference.KINDS,
                         **_eval.KINDS}

__all__ = [
    "KINDS", "ArithConfig", "DataConfig", "DeepSpeedConfig", "FieldsConfig", "GenerateConfig",
    "GenerationConfig", "LoggingConfig", "ModelConfig", "SFTConfig", "SFTTrainerConfig", "TinyModelConfig",
    "config_from_dict", "load_config", "parse_override", "read_yaml", "save_config", "to_dict",
]
