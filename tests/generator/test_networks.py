import pytest
import torch

from generator.networks import (
    PRESETS,
    Critic,
    Generator,
    KneeGAN,
    MinibatchStd,
    config_preset,
    diff_augment,
    resolution_ladder,
)


@pytest.mark.parametrize("resolution", [32, 64, 224])
@pytest.mark.parametrize("conditional", [True, False])
def test_generator_and_critic_shapes(resolution, conditional):
    cfg = config_preset(
        "tiny",
        resolution=resolution,
        channels=2,
        max_channels=16,
        conditional=conditional,
    )
    G, D = Generator(cfg), Critic(cfg)
    z, y = torch.randn(3, cfg.z_dim), torch.tensor([0, 2, 4])
    x = G(z, y if conditional else None)
    assert x.shape == (3, 1, resolution, resolution)
    assert x.abs().max() <= 1
    assert D(x, y if conditional else None).shape == (3,)


def test_resolutions_that_do_not_halve_to_a_small_base_are_refused():
    assert resolution_ladder(224) == (7, 5)
    assert resolution_ladder(64) == (4, 4)
    with pytest.raises(ValueError):
        resolution_ladder(100)


def test_presets_follow_the_papers():
    seed, default = PRESETS["seed"], PRESETS["default"]
    assert not seed.conditional and seed.gp_lambda == 10 and seed.n_critic == 5
    assert seed.resolution == default.resolution == 224
    assert default.conditional and default.diffaugment and default.ema_decay > 0


def test_seed_holds_one_pair_per_grade_and_default_one_for_all():
    tiny_seed = config_preset("tiny", conditional=False)
    assert len(KneeGAN(tiny_seed).pairs()) == 5
    assert len(KneeGAN(PRESETS["tiny"]).pairs()) == 1


def test_the_critic_has_no_batch_norm():
    D = Critic(PRESETS["tiny"])
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules()
    )


def test_diffaugment_keeps_shape_and_passes_gradients():
    x = torch.rand(4, 1, 32, 32, requires_grad=True)
    y = diff_augment(x * 2 - 1, "color,translation,cutout")
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_minibatch_std_sees_each_group_alone():
    same = torch.ones(4, 3, 2, 2)
    varied = torch.randn(4, 3, 2, 2)
    out = MinibatchStd(4)(torch.cat([same, varied]))  # two groups of four
    assert out.shape == (8, 4, 2, 2)
    assert torch.all(out[:4, 3] < 1e-3) and torch.all(out[4:, 3] > 0.1)
