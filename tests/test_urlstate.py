"""The configuration in the URL: round trip, and every bad value refused with a sentence."""

from lab.core.config import RunConfig, problems
from lab.views.urlstate import config_from_query, config_to_query


def test_round_trip_keeps_every_changed_field():
    config = RunConfig(loss="triplet", margin=0.3, miner="semihard", epochs=7, lr=0.003,
                       normalize=False, seed=12, chopra_q=None)
    parsed, warnings = config_from_query(config_to_query(config))
    assert parsed == config
    assert warnings == []


def test_defaults_make_an_empty_query():
    assert config_to_query(RunConfig()) == {}


def test_bad_values_fall_back_to_defaults_with_a_reason():
    parsed, warnings = config_from_query({
        "margin": "-5", "loss": "evil", "epochs": "999999", "seed": "<script>alert(1)</script>",
        "lr": "nan", "normalize": "maybe",
    })
    assert parsed == RunConfig()
    text = " ".join(warnings)
    for field in ("margin", "loss", "epochs", "seed", "lr", "normalize"):
        assert field in text
    assert "<script>alert(1)</script>" not in text  # values are cut and quoted, never echoed raw
    assert len(warnings) == 6


def test_a_link_cannot_name_a_server_folder():
    parsed, warnings = config_from_query({"data_dir": "/etc", "dataset": "folder"})
    assert parsed.data_dir is None
    assert any("data_dir" in w for w in warnings)


def test_problems_lists_every_out_of_range_field():
    config = RunConfig(epochs=0, margin=-1.0, network="transformer")
    found = " ".join(problems(config))
    assert "epochs" in found and "margin" in found and "network" in found
    assert problems(RunConfig()) == []
