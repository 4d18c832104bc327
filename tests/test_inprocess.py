"""In-process trials skip Hydra's per-trial composition: each trial's saved config must be exactly
what Hydra composes for its overrides."""
import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from conftest import FAST, run_cli


def hydra_composes(overrides: list[str]) -> tuple[dict, dict]:
    from hydra import compose, initialize_config_dir

    from sweeper.core.layout import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    hydra = {"task": list(cfg.hydra.overrides.task), "override_dirname": cfg.hydra.job.override_dirname}
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True), hydra


@pytest.mark.slow
def test_each_trial_config_is_what_hydra_composes(tmp_path):
    from sweeper.core.layout import register_resolvers

    register_resolvers()
    sweep = tmp_path / "s"
    proc = run_cli(["-m", "lr=1e-3,1e-2", "scheduler=cosine,linear", "lora.r=4", f"hydra.sweep.dir={sweep}",
                    "sweep.name=s", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    for trial in sorted((sweep / "trials").iterdir()):
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        saved = OmegaConf.to_container(OmegaConf.load(trial / ".hydra" / "config.yaml"), resolve=True)
        expected, hydra = hydra_composes(overrides)
        assert saved == expected, trial.name
        saved_hydra = OmegaConf.load(trial / ".hydra" / "hydra.yaml").hydra
        assert list(saved_hydra.overrides.task) == hydra["task"]
        assert saved_hydra.job.override_dirname == hydra["override_dirname"]


def test_the_private_hydra_name_it_uses_is_still_there():
    try:
        from hydra._internal.config_loader_impl import get_overrides_dirname  # noqa: F401
    except ImportError as err:
        pytest.fail(f"hydra moved get_overrides_dirname ({err}): sweeper/executors/inprocess.py needs it; "
                    "pin hydra-core to the last version that has it, or compute hydra.job.override_dirname there")
