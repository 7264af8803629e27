"""What every page may name: the grade scale, from the domain module."""

from turingtest.domain.scales import KL


def scales(request) -> dict:
    return {"grade_scale": KL}
