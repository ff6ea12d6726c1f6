"""Registers ragft's config schemas in Hydra's ConfigStore.

Hydra imports every module under the ``hydra_plugins`` namespace package before it composes a config
(its plugin scan), in ``dvc exp run`` as well, whose composition imports nothing else of ours: that is
what lets ``conf/<group>/*.yaml`` extend ``<group>_schema``. The schemas themselves live in
ragft/config/schema.py (this module may be imported more than once; registering is idempotent).
"""

from ragft.config.schema import register

register()
