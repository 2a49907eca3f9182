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


def test_training_chapter_reads_a_language_model_record():
    lm = {"model": "char-gru", "data": "chars", "params": 1000, "test_accuracy": None, "test_perplexity": 4.5,
          "history": [{"train_loss": 2.0, "train_accuracy": None, "val_loss": 1.5, "val_accuracy": None,
                       "seconds": 3.0}]}
    page = render_report("t", [training_chapter(lm)])
    assert "perplexity 4.500" in page and "test accuracy not measured" in page
    assert "data:image/png" not in page  # no accuracy curve to draw
