import pytest
import torch

from generator.networks import (
    ARCHITECTURES,
    PRESETS,
    Critic,
    KneeGAN,
    LiteCritic,
    MinibatchStd,
    config_preset,
    diff_augment,
    resolution_ladder,
)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("resolution", [32, 64, 224])
@pytest.mark.parametrize("conditional", [True, False])
def test_generator_and_critic_shapes(arch, resolution, conditional):
    cfg = config_preset(
        "tiny",
        arch=arch,
        resolution=resolution,
        channels=2,
        max_channels=16,
        conditional=conditional,
    )
    G_cls, D_cls = ARCHITECTURES[arch]
    G, D = G_cls(cfg), D_cls(cfg)
    z, y = torch.randn(3, cfg.z_dim), torch.tensor([0, 2, 4])
    x = G(z, y if conditional else None)
    assert x.shape == (3, 1, resolution, resolution)
    assert x.abs().max() <= 1
    assert D(x, y if conditional else None).shape == (3,)


def test_the_lite_critic_decodes_a_small_copy_of_real_images():
    cfg = config_preset("tiny", resolution=64)
    D = LiteCritic(cfg)
    scores, decoded = D(torch.rand(4, 1, 64, 64) * 2 - 1, torch.arange(4), decode=2)
    assert scores.shape == (4,)
    assert decoded.shape == (2, 1, 32, 32)  # 8 x the base side (4)


def test_resolutions_that_do_not_halve_to_a_small_base_are_refused():
    assert resolution_ladder(224) == (7, 5)
    assert resolution_ladder(64) == (4, 4)
    with pytest.raises(ValueError):
        resolution_ladder(100)


def test_presets_follow_the_papers():
    seed, default = PRESETS["seed"], PRESETS["default"]
    assert not seed.conditional and seed.gp_lambda == 10 and seed.n_critic == 5
    assert seed.arch == "dcgan" and seed.loss == "wgan-gp"
    assert seed.resolution == 224 and default.resolution >= 128
    assert default.arch == "lite" and default.loss == "hinge"
    assert default.conditional and default.diffaugment and default.ema_decay > 0
    assert default.lr_d > default.lr_g  # two time-scale updates


def test_old_checkpoint_configs_load_as_the_architecture_they_were():
    # Version-1 checkpoints predate `arch` and `loss`: they were WGAN-GP DCGANs.
    old = {"name": "default", "resolution": 64, "channels": 4, "conditional": True}
    cfg = type(PRESETS["seed"]).from_dict(old)
    assert cfg.arch == "dcgan" and cfg.loss == "wgan-gp"


def test_seed_holds_one_pair_per_grade_and_default_one_for_all():
    tiny_seed = config_preset("tiny-wgan", conditional=False)
    assert len(KneeGAN(tiny_seed).pairs()) == 5
    assert len(KneeGAN(PRESETS["tiny"]).pairs()) == 1


@pytest.mark.parametrize("preset", ["tiny", "tiny-wgan"])
def test_the_critic_has_no_batch_norm(preset):
    D = KneeGAN(PRESETS[preset]).D[0]
    assert isinstance(D, LiteCritic if preset == "tiny" else Critic)
    # Scores are per image; the lite critic's decoder (real images only,
    # never scored) may normalise its own batch.
    scoring = [m for name, m in D.named_modules() if not name.startswith("decoder")]
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in scoring
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
