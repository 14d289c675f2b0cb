"""Inter-pixel affinities from a boundary map (IRN, docs/method.md §5), shared by IRN training
and the random walk.

Pixels i and j = i + (dy, dx) are compared within a radius on the stride-4 grid. Their affinity
is 1 - max B over the points of the path between them (IRN's set: the grid points closer than
1 to the segment, both ends included); the map is padded with B = 1, so a pair that leaves the
image has affinity 0. Everything is shifted-map tensor algebra
over the whole batch: a loop over the few dozen offsets, none over images or pixels.
"""

import torch
import torch.nn.functional as F

Offset = tuple[int, int]


def forward_offsets(radius: int) -> list[Offset]:
    """One offset of each pair within RADIUS: (0, x) for 1 <= x < r, and (y, x) with y >= 1,
    x^2 + y^2 < r^2 (the reverse offsets are the same pairs seen from the other end)."""
    row0 = [(0, x) for x in range(1, radius)]
    rest = [
        (y, x)
        for y in range(1, radius)
        for x in range(-radius + 1, radius)
        if x * x + y * y < radius * radius
    ]
    return row0 + rest


def path_points(offset: Offset) -> list[Offset]:
    """The grid points the path from (0, 0) to OFFSET passes: as in IRN, every integer point of
    the offset's bounding box whose perpendicular distance to the segment is below 1 (both ends
    included), in raster order."""
    dy, dx = offset
    length_sq = dy * dy + dx * dx
    if not length_sq:
        return [(0, 0)]
    return [
        (y, x)
        for y in range(min(0, dy), max(0, dy) + 1)
        for x in range(min(0, dx), max(0, dx) + 1)
        if (dy * x - dx * y) ** 2 < length_sq
    ]


def shift(x: torch.Tensor, dy: int, dx: int, pad: int, value: float) -> torch.Tensor:
    """out[..., y, x] = x[..., y + dy, x + dx], VALUE outside (|dy|, |dx| <= PAD)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), value=value)
    return padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def path_affinity(boundary: torch.Tensor, offsets: list[Offset]) -> torch.Tensor:
    """(B, h, w) boundary probabilities -> (B, K, h, w): 1 - max B on the path from each pixel
    to its neighbour at each of the K offsets."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = F.pad(boundary, (pad, pad, pad, pad), value=1.0)
    h, w = boundary.shape[-2:]
    cache: dict[Offset, torch.Tensor] = {}

    def at(p: Offset) -> torch.Tensor:
        if p not in cache:
            cache[p] = padded[..., pad + p[0] : pad + p[0] + h, pad + p[1] : pad + p[1] + w]
        return cache[p]

    maxes = []
    for offset in offsets:
        points = path_points(offset)
        m = at(points[0])
        for p in points[1:]:
            m = torch.maximum(m, at(p))
        maxes.append(m)
    return 1 - torch.stack(maxes, dim=1)


def pair_labels(label: torch.Tensor, offsets: list[Offset]) -> dict[str, torch.Tensor]:
    """(B, h, w) IR labels (0 bg, c > 0 a class, 255 unknown) -> boolean (B, K, h, w) masks of
    the pairs that are both background (bg_pos), the same class (fg_pos) or different (neg)."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    other = torch.stack([shift(label, dy, dx, pad, 255) for dy, dx in offsets], dim=1)
    this = label.unsqueeze(1)
    known = (this != 255) & (other != 255)
    same = this == other
    return {
        "bg_pos": known & same & (this == 0),
        "fg_pos": known & same & (this > 0),
        "neg": known & ~same,
    }


def transition_weights(boundary: torch.Tensor, beta: float, radius: int) -> torch.Tensor:
    """The random walk's transition matrix in stencil form, (B, (2r-1)^2, h, w).

    A_ij = (1 - max B on the path)^beta for |i - j| < r (symmetric, unit diagonal); T = A with
    every column normalized to sum 1. Entry [:, k, y, x] is T[(y, x) + o_k, (y, x)] for the k-th
    offset o_k of a (2r-1)^2 window in row-major order (zero off the disc or off the image), so
    (v T)_j is the weighted mean of v around j, and the columns summing to 1 conserve a walker's
    probability mass.
    """
    offsets = forward_offsets(radius)
    aff = path_affinity(boundary, offsets).clamp(min=0) ** beta  # (B, K, h, w), pair (j, j+o)
    half = radius - 1
    size = 2 * half + 1
    window = torch.zeros(boundary.shape[0], size * size, *boundary.shape[-2:], device=aff.device)
    window[:, half * size + half] = 1.0  # unit diagonal
    for k, (dy, dx) in enumerate(offsets):
        window[:, (half + dy) * size + half + dx] = aff[:, k]
        # the same pair seen from j' = j + o: its affinity to j' - o is aff_k at j' - o
        window[:, (half - dy) * size + half - dx] = shift(aff[:, k], -dy, -dx, half, 0.0)
    return window / window.sum(1, keepdim=True)


def random_walk(scores: torch.Tensor, weights: torch.Tensor, steps: int) -> torch.Tensor:
    """scores (B, K, h, w) -> scores T^STEPS with `transition_weights` WEIGHTS, as STEPS rounds of
    a local weighted mean (one unfold each): memory O(window x pixels), never an n x n matrix."""
    b, k, h, w = scores.shape
    half = (int(weights.shape[1] ** 0.5) - 1) // 2
    size = 2 * half + 1
    flat_w = weights.view(b, 1, size * size, h * w)
    for _ in range(steps):
        nb = F.unfold(scores, size, padding=half).view(b, k, size * size, h * w)
        scores = (nb * flat_w).sum(2).view(b, k, h, w)
    return scores
