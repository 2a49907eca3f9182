import pytest


@pytest.fixture(scope="session")
def digits_mlp():
    """A LeNet-300-100 trained briefly on digits, with the train and test splits (about a second)."""
    from aicompute.data import get_dataset
    from aicompute.train import train_model

    run = train_model("mlp", "digits", epochs=3, seed=0)
    return run.network, get_dataset("digits", "train"), get_dataset("digits", "test")
