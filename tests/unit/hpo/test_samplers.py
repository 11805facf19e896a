"""The samplers of hpo.sampler: which parameters each one draws independently, said once."""

from redsm5_hpo.hpo.samplers import ResumableSampler, per_trial_sampler, sampler_warning

SPACE = {
    "train": {
        "lr_head": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"train.optimizer": "sgd"}},
    }
}


def test_the_warning_names_what_each_sampler_draws_independently() -> None:
    assert sampler_warning("tpe", SPACE) is None and sampler_warning("random", SPACE) is None
    gp = sampler_warning("gp", SPACE)
    assert gp is not None and "train.momentum" in gp and "train.optimizer" not in gp  # GP models categoricals
    cmaes = sampler_warning("cmaes", SPACE)
    assert cmaes is not None and "train.momentum, train.optimizer" in cmaes and "train.lr_head" not in cmaes
    assert sampler_warning("cmaes", {"train": {"lr_head": SPACE["train"]["lr_head"]}}) is None


def test_each_kind_is_optunas_own_sampler() -> None:
    names = {kind: type(per_trial_sampler(kind, 7, 13)).__name__ for kind in ("tpe", "random", "gp", "cmaes", "qmc")}
    assert names == {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "gp": "GPSampler",
        "cmaes": "CmaEsSampler",
        "qmc": "QMCSampler",
    }
    assert ResumableSampler(13).kind == "tpe"
