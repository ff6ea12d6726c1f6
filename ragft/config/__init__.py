"""The config contract: the schema of params.yaml (``schema``), its composition from conf/ and its
validation (``compose``). ``python -m ragft.config compose|check`` is ``ragft config compose|check``."""

from ragft.config.compose import (
                                  check_params_fresh,
                                  compose_conf,
                                  for_base,
                                  for_candidate,
                                  load_params,
                                  plain,
                                  validate,
                                  write_params,
)
from ragft.config.schema import Config, ConfigError

__all__ = ["Config", "ConfigError", "check_params_fresh", "compose_conf", "for_base", "for_candidate", "load_params", "plain",
           "validate", "write_params"]
