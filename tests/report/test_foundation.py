from aicompute.demo.foundation import perceptron_lesson, recurrent_check
from aicompute.report.foundation import perceptron_chapter, recurrent_chapter, training_chapter, zoo_chapter
from aicompute.report.html import render_report

ZOO = {"convention": "params = parameter elements", "models": [
    {"name": "alexnet", "family": "image", "params": 61100840, "input_shape": [3, 224, 224], "description": "d"},
    {"name": "mlp", "family": "vector", "params": 266610, "input_shape": [1, 28, 28], "description": "e"},
]}
RUN = {"model": "lenet5", "data": "mnist", "params": 61706, "test_accuracy": 0.975, "history": [
    {"train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.2, "val_accuracy": 0.95, "seconds": 1.5},
    {"train_loss": 0.1, "train_accuracy": 0.97, "val_loss": 0.09, "val_accuracy": 0.975, "seconds": 1.4},
]}


def test_chapters_render_their_records():
    page = render_report("t", [
        zoo_chapter(ZOO),
        training_chapter(RUN),
        perceptron_chapter(perceptron_lesson(epochs=10).to_dict()),
        recurrent_chapter(recurrent_check(batch=2, steps=3, input_size=2, hidden_size=4, repeats=1).to_dict()),
    ])
    assert "61,100,840" in page and "266,610" in page
    assert "97.50%" in page and "0.975" in page
    assert "XOR" in page and "LSTM" in page
    assert page.count("data:image/png;base64,") == 3  # zoo bars, accuracy curve, mistakes curve
