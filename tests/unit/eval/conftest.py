import pytest


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    """(model, tokenizer) of the untrained tiny test model, loaded once."""
    from posttrain.eval.load import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_dir))


@pytest.fixture()
def tiny_backend(tiny_model):
    from posttrain.eval.backend import HFBackend

    model, tokenizer = tiny_model
    return HFBackend(model, tokenizer, batch_size=4, show_progress=False)
