"""What the model card says about the data and the encoder, from the configuration alone."""

from redsm5_hpo.commands.export import BUNDLED_HUB_ID, data_statement, hub_base_model, shown_path


def test_the_data_statement_names_the_synthetic_sample_as_synthetic() -> None:
    assert "synthetic" in data_statement("sample") and "not real Reddit posts" in data_statement("sample")
    local = data_statement("/data/private/redsm5")
    assert "`redsm5`" in local and "/data/private" not in local
    assert data_statement("irlab-udc/redsm5").startswith("`irlab-udc/redsm5` from the Hugging Face hub")


def test_the_base_model_is_a_hub_id_or_nothing(tmp_path) -> None:
    assert hub_base_model("bundled:all-MiniLM-L6-v2") == BUNDLED_HUB_ID
    assert hub_base_model("bert-base-uncased") == "bert-base-uncased"
    assert hub_base_model("tiny-random") is None
    assert hub_base_model(str(tmp_path)) is None and hub_base_model("./models/mine") is None


def test_a_path_on_the_card_keeps_its_last_three_parts(tmp_path) -> None:
    path = tmp_path / "experiments" / "trial_ab" / "checkpoints" / "epoch_0003"
    assert shown_path(path) == "trial_ab/checkpoints/epoch_0003"
