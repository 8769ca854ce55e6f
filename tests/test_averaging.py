"""The moving average of the weights: its arithmetic, and the model holding it only inside applied()."""
import pytest
import torch

from meprop_cli.averaging import WeightAverage


def test_average_follows_the_warmed_up_decay():
    model = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    average = WeightAverage(model, decay=0.5)
    expected = start
    for t in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(t))
        d = min(0.5, (1 + t) / (10 + t))  # 2/11, 3/12, then 4/13: the warm-up is below 0.5 throughout
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters())]
        average.update()
    for a, e in zip(average.average, expected):
        torch.testing.assert_close(a, e)


def test_decay_caps_the_warm_up():
    model = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(model, decay=0.9)
    average.updates = 1000  # past the warm-up: (1 + t) / (10 + t) > 0.9
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()
    torch.testing.assert_close(average.average[0], before + 0.1)


def test_applied_swaps_the_average_in_and_the_trained_weights_back():
    model = torch.nn.Linear(2, 2)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    trained = model.weight.detach().clone()
    with average.applied():
        torch.testing.assert_close(model.weight, average.average[0])
        assert not torch.equal(model.weight, trained)
    torch.testing.assert_close(model.weight, trained)
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("an evaluation failed")
    torch.testing.assert_close(model.weight, trained)  # restored even then


def test_state_round_trips():
    model = torch.nn.Linear(2, 2)
    average = WeightAverage(model, decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            model.weight.add_(1.0)
        average.update()
    other = WeightAverage(model, decay=0.9)
    other.load_state_dict(average.state_dict())
    assert other.updates == 3
    for a, b in zip(other.average, average.average):
        torch.testing.assert_close(a, b)
