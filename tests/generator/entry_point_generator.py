"""A research team's own generator, as the workers would import it.

``tests.generator.entry_point_generator:make`` follows the entry-point
contract of :mod:`generator.sample`: one image per seed, the same image for
the same (grade, seed) whatever else is asked for.
"""

import numpy as np


def make(grade: int, seeds: list[int]) -> np.ndarray:
    images = []
    for seed in seeds:
        rng = np.random.default_rng([grade, seed])
        img = rng.integers(0, 256, (40, 40), dtype=np.uint8)
        img[:, :4] = 50 * grade  # the grade shows in a band on the left
        images.append(img)
    return np.stack(images)  # (N, 40, 40) uint8
