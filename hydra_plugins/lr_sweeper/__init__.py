"""Hydra shim: Hydra instantiates sweepers only from classes defined in the `hydra_plugins.`
namespace, so this subclass is the registered name. The sweeper itself lives in
sweeper/hydra_sweeper.py; its config is conf/hydra/sweeper/lr_sweeper.yaml.
"""
from sweeper import hydra_sweeper
from sweeper.core.layout import register_resolvers

register_resolvers()


class LRSweeper(hydra_sweeper.LRSweeper):
    """Registered as hydra_plugins.lr_sweeper.LRSweeper; see sweeper.hydra_sweeper.LRSweeper."""
