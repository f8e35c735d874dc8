"""What a trained ViT has learned: the analysis figures of the paper (Dosovitskiy et al., 2021,
Figure 7 and Figure 6), as plain functions on NumPy arrays, plus helpers that draw them.

    filters = embedding_filters(model.patch_embed.proj.weight.numpy(), P, C)    # (28 P P C)
    tiles = position_similarity(model.pos_embed.numpy(), g)                     # (g g g g)
    attentions = attention_weights(model, images)                               # L x (B H T T)
    distances = mean_attention_distance(attentions, g, P)                       # (L H) pixels
    maps = attention_rollout(attentions)                                        # (B g g)

Notation: P the patch side in pixels, C the image channels, D the token width, g the side of the
g x g patch grid (N = g*g patches), T = cls_tokens + N tokens, L layers, H heads, B images.
`cls_tokens` is 1 for pool='cls' models (the class token is token 0) and 0 for pool='gap' ones.
"""
import math

import numpy as np

from minivit import backend
from minivit.engine import Tensor
from minivit.evaluation import in_eval_mode


def _as_numpy(array):
    if isinstance(array, Tensor):
        array = array.data
    return backend.to_device(array, "cpu")


def _grid_side(tokens, cls_tokens):
    """g for T = cls_tokens + g*g tokens, or a clear error."""
    patches = tokens - cls_tokens
    g = int(round(math.sqrt(max(patches, 0))))
    if patches <= 0 or g * g != patches:
        raise ValueError(f"{tokens} tokens with {cls_tokens} class token(s) leave {patches} "
                         f"patches, which is not a square grid")
    return g


# --- the analyses ---------------------------------------------------------------------------

def embedding_filters(weight, patch_size, channels, count=28):
    """Principal components of the patch-embedding filters (the paper's Figure 7, left).

    weight: the patch projection E, (P*P*C, D), rows ordered (p1 p2 c) as in PatchEmbed, so
    column d is the P x P x C filter that gives feature d.
    Algorithm: treat the D columns as D samples of a P*P*C vector, X = E^T (D, P*P*C); center,
    X_c = X - mean over the D samples; SVD X_c = U S V^T; the rows of V^T are the principal
    components, in order of decreasing singular value. Keep the first `count` (at most
    min(D, P*P*C) exist, so fewer come back when the filters are small), reshape each to
    (P, P, C) and min-max scale it to [0, 1] on its own (a constant component becomes 0.5).
    A component's sign is arbitrary; it is fixed so that its entry of largest magnitude is
    positive, which makes the result deterministic.
    Returns (k, P, P, C) float64 in [0, 1], k = min(count, D, P*P*C).
    """
    weight = np.asarray(_as_numpy(weight), dtype=np.float64)
    rows = patch_size * patch_size * channels
    if weight.ndim != 2 or weight.shape[0] != rows:
        raise ValueError(f"expected a patch-embedding weight of shape ({rows}, D) for "
                         f"{patch_size}x{patch_size} patches with {channels} channel(s), "
                         f"got {weight.shape}")
    samples = weight.T                                     # (D, P*P*C)
    centered = samples - samples.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    components = vt[:min(count, len(vt))]                  # (k, P*P*C)
    largest = np.argmax(np.abs(components), axis=1)
    components = components * np.sign(components[np.arange(len(components)), largest])[:, None]
    low = components.min(axis=1, keepdims=True)
    span = components.max(axis=1, keepdims=True) - low
    scaled = np.where(span > 0, (components - low) / np.where(span > 0, span, 1), 0.5)
    return scaled.reshape(-1, patch_size, patch_size, channels)


def position_similarity(pos_embed, grid, cls_tokens=1):
    """Cosine similarity of each patch's position embedding with all the others (Figure 7,
    centre).

    pos_embed: (1, T, D) or (T, D), T = cls_tokens + grid*grid, the class token(s) first.
    Algorithm: drop the class row(s), leaving P (N, D); L2-normalise each row, P^; S = P^ P^^T
    (N, N); tile (r, c), for the patch in grid row r and column c, is S[r*g + c].reshape(g, g):
    that patch's similarity with every position, laid out on the patch grid.
    Returns (g, g, g, g): [r, c] is the tile of patch (r, c), [r, c, r, c] = 1.
    """
    embed = np.asarray(_as_numpy(pos_embed), dtype=np.float64)
    embed = embed.reshape(-1, embed.shape[-1])
    if len(embed) != cls_tokens + grid * grid:
        raise ValueError(f"expected {cls_tokens} + {grid}*{grid} = {cls_tokens + grid * grid} "
                         f"position embeddings, got {len(embed)}")
    patches = embed[cls_tokens:]
    unit = patches / np.maximum(np.linalg.norm(patches, axis=1, keepdims=True), 1e-12)
    return (unit @ unit.T).reshape(grid, grid, grid, grid)


def attention_weights(model, images, batch_size=None):
    """The attention weights of every block of `model` for `images`.

    images: (B, C, H, W) float, normalised as in training (NumPy or CuPy; moved to the model's
    device). Sets `keep_attention` on every block's MultiHeadAttention, runs the forward pass in
    eval mode under no_grad (in chunks of batch_size images, if given), collects each block's
    `.attention`, then restores keep_attention, `.attention` and the training mode as they were.
    Returns a list of L NumPy arrays (B, H, T, T), T = tokens; row i of head h is the softmax
    over the keys j of query token i (each row sums to 1).
    """
    layers = [block.attn for block in model.blocks]
    saved = [(layer.keep_attention, layer.attention) for layer in layers]
    batch_size = batch_size or max(len(images), 1)
    collected = [[] for _ in layers]
    try:
        for layer in layers:
            layer.keep_attention = True
        with in_eval_mode(model):
            for start in range(0, len(images), batch_size):
                model(backend.to_device(images[start:start + batch_size], model.device))
                for store, layer in zip(collected, layers):
                    store.append(_as_numpy(layer.attention))
    finally:
        for layer, (keep, attention) in zip(layers, saved):
            layer.keep_attention, layer.attention = keep, attention
    return [np.concatenate(store) for store in collected]


def patch_distances(grid, patch_size):
    """(N, N) distances in pixels between the patch centres of a g x g grid, N = g*g, patches in
    row-major order: d_ij = patch_size * ||(r_i, c_i) - (r_j, c_j)||."""
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    coords = np.stack([rows, cols], axis=1).astype(np.float64)
    return patch_size * np.linalg.norm(coords[:, None] - coords[None], axis=-1)


def mean_attention_distance(attentions, grid, patch_size, cls_tokens=1, renormalize=True):
    """Mean attention distance of every head, in pixels (Figure 7, right; the paper averages
    over 128 images).

    attentions: L arrays (B, H, T, T) (or one (L, B, H, T, T) array), T = cls_tokens + g*g.
    Algorithm: keep the patch tokens only, dropping the class row(s) and column(s): A (B H N N).
    d_ij = patch_size * ||grid_i - grid_j||, the pixel distance between the patches' positions.
    Per head the distance of query i is sum_j A[h, i, j] d_ij; it is averaged over the N queries
    and the B images.
    After the class column is dropped a row sums to 1 - (attention to the class token).
    renormalize=True (the default, and our choice) divides each row by that sum first, so a
    query's distance is the expected pixel distance of the patches it attends to: a head that
    attends mostly to the class token is then not mistaken for a local one. renormalize=False is
    the reference's formula taken literally (rows as they are; such a head's distance shrinks by
    its class-token share). With cls_tokens=0 (pool='gap') both are the same.
    Returns (L, H) float64.
    """
    distances = patch_distances(grid, patch_size)
    result = []
    for attention in attentions:
        a = np.asarray(_as_numpy(attention), dtype=np.float64)[..., cls_tokens:, cls_tokens:]
        if a.shape[-1] != grid * grid:
            raise ValueError(f"attention over {a.shape[-1] + cls_tokens} tokens does not fit a "
                             f"{grid}x{grid} grid with {cls_tokens} class token(s)")
        if renormalize:
            a = a / np.maximum(a.sum(axis=-1, keepdims=True), 1e-12)
        per_query = (a * distances).sum(axis=-1)             # (B H N)
        result.append(per_query.mean(axis=(0, 2)))           # (H)
    return np.stack(result)


def rollout(attentions):
    """The attention rollout matrix R (Abnar & Zuidema, 2020), (B, T, T).

    attentions: L arrays (B, H, T, T), first layer first. Per layer: average over heads, add the
    identity for the residual connection and renormalise the rows, A^_l = rownorm(mean_h A_l + I);
    then R = A^_L ... A^_2 A^_1. Every A^_l is row-stochastic, so the rows of R sum to 1; R[b, i, j]
    is how much of input token j flows into output token i.
    """
    result = None
    for attention in attentions:
        a = np.asarray(_as_numpy(attention), dtype=np.float64).mean(axis=1)   # (B T T)
        a = a + np.eye(a.shape[-1])
        a = a / a.sum(axis=-1, keepdims=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("attention rollout needs the attention of at least one layer")
    return result


def attention_rollout(attentions, cls_tokens=1):
    """Attention maps by attention rollout (Abnar & Zuidema, 2020; the paper's Figure 6).

    attentions: L arrays (B, H, T, T), T = cls_tokens + g*g. R = rollout(attentions) (B T T).
    With a class token the map is R[:, 0, cls_tokens:], what the class token gathers from each
    patch. For pool='gap' models (cls_tokens=0), which have no class token, it is the mean of R
    over the query rows, what the averaged output gathers from each patch. Each map is reshaped
    to g x g (row-major, as the patches) and min-max normalised to [0, 1] (a constant map
    becomes all zeros).
    Returns (B, g, g) float64.
    """
    matrix = rollout(attentions)
    g = _grid_side(matrix.shape[-1], cls_tokens)
    maps = matrix[:, 0, cls_tokens:] if cls_tokens else matrix.mean(axis=1)
    maps = maps.reshape(-1, g, g)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def upsample(maps, size, mode="bilinear"):
    """(B, g, g) maps -> (B, size, size), for overlaying on the images. mode 'nearest' repeats
    each cell (size must be a multiple of g); 'bilinear' interpolates between the cell centres
    (scipy.ndimage.zoom with order 1 and grid_mode, edges held constant)."""
    maps = np.asarray(_as_numpy(maps), dtype=np.float64)
    g = maps.shape[-1]
    if mode == "nearest":
        if size % g:
            raise ValueError(f"nearest upsampling needs size {size} to be a multiple of {g}")
        return maps.repeat(size // g, axis=-2).repeat(size // g, axis=-1)
    if mode != "bilinear":
        raise ValueError(f"mode must be 'nearest' or 'bilinear', not {mode!r}")
    from scipy.ndimage import zoom
    return np.stack([zoom(m, size / g, order=1, mode="nearest", grid_mode=True) for m in maps])


# --- figures ----------------------------------------------------------------------------------

def _figure(**kwargs):
    """A matplotlib Figure drawn off-screen: it leaves pyplot (and a notebook's inline figures)
    alone, and fig.savefig writes it."""
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def _colormap(name):
    import matplotlib
    return matplotlib.colormaps[name]


def _as_picture(image):
    """(C, H, W) or (H, W, C) image (uint8, or float in [0, 1]) -> something imshow shows, with
    the colour map to use: RGB (H W 3) or grey (H W)."""
    image = _as_numpy(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.dtype == np.uint8:
        image = image / 255
    if image.ndim == 3 and image.shape[-1] == 3:
        return np.clip(image, 0, 1), None
    if image.ndim == 3:
        image = image.mean(axis=-1)
    return np.clip(image, 0, 1), "gray"


def plot_filters(filters, path, columns=7, title=None):
    """The principal components of the embedding filters (k, P, P, C) in [0, 1], in a grid of
    `columns` columns, first component at the top left (as the paper's 4 x 7 grid); RGB for
    3 channels, grey for 1 (the mean of the channels otherwise)."""
    filters = _as_numpy(filters)
    if title is None:
        kind = "RGB embedding filters" if filters.shape[-1] == 3 else "Embedding filters"
        title = f"{kind}\n(first principal components)"
    count = len(filters)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig = _figure(figsize=(0.75 * columns + 0.4, 0.75 * rows + 0.8))
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if k < count:
            picture, cmap = _as_picture(filters[k])
            axis.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_position_similarity(tiles, path, title="Position embedding similarity"):
    """The (g, g, g, g) cosine-similarity tiles laid out on the g x g patch grid, a one-cell gap
    between tiles, one colour scale from -1 to 1 with a colorbar (as the paper's figure)."""
    tiles = _as_numpy(tiles)
    g = tiles.shape[0]
    step = g + 1
    mosaic = np.full((g * step - 1, g * step - 1), np.nan)
    for r in range(g):
        for c in range(g):
            mosaic[r * step:r * step + g, c * step:c * step + g] = tiles[r, c]
    fig = _figure(figsize=(5.4, 4.6))
    axis = fig.subplots()
    cmap = _colormap("viridis").with_extremes(bad="white")
    image = axis.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1,
                        interpolation="nearest")
    centres = np.arange(g) * step + (g - 1) / 2
    labels = [str(i + 1) for i in range(g)]
    axis.set_xticks(centres, labels)
    axis.set_yticks(centres, labels)
    axis.tick_params(length=0, labelsize=8 if g <= 8 else 6)
    for side in axis.spines.values():
        side.set_visible(False)
    axis.set(xlabel="Input patch column", ylabel="Input patch row", title=title)
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="Cosine similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_attention_distance(distances, path, image_size=None, title="Mean attention distance"):
    """One point per head: x the layer (1 = first), y its mean attention distance in pixels;
    heads coloured as in the paper's figure. image_size, if given, sets the top of the y axis
    to the largest possible distance, the image's diagonal."""
    distances = _as_numpy(distances)
    layers, heads = distances.shape
    fig = _figure(figsize=(5, 4))
    axis = fig.subplots()
    colours = _colormap("tab20" if heads > 10 else "tab10")
    depth = np.arange(1, layers + 1)
    for h in range(heads):
        axis.scatter(depth, distances[:, h], s=18, color=colours(h % colours.N),
                     label=f"Head {h + 1}", zorder=3)
    axis.set(xlabel="Network depth (layer)", ylabel="Mean attention distance (pixels)",
             title=title, xticks=depth)
    top = image_size * math.sqrt(2) if image_size else max(float(distances.max()) * 1.1, 1.0)
    axis.set_ylim(0, top)
    axis.set_xlim(0.5, layers + 0.5)
    axis.grid(alpha=0.3, zorder=0)
    if heads <= 16:
        axis.legend(fontsize=7, ncol=2 if heads > 6 else 1, loc="best", framealpha=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_rollout(images, maps, path, columns=4, mode="bilinear", alpha=0.5,
                 title="Attention rollout"):
    """Each image beside its rollout map, upsampled to the image (`upsample`, mode) and
    overlaid in colour. images: (B, C, H, W) uint8 (or floats in [0, 1]); maps: (B, g, g) in
    [0, 1]. `columns` image/overlay pairs per row."""
    images = _as_numpy(images)
    count = len(images)
    columns = max(min(columns, count), 1)
    rows = math.ceil(count / columns)
    fig = _figure(figsize=(3.2 * columns, 1.7 * rows + 0.6))
    axes = fig.subplots(rows, 2 * columns, squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    size = images.shape[-1]
    overlays = upsample(maps, size, mode)
    for k in range(count):
        row, column = divmod(k, columns)
        picture, cmap = _as_picture(images[k])
        left, right = axes[row, 2 * column], axes[row, 2 * column + 1]
        left.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        right.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        right.imshow(overlays[k], cmap="jet", vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
        if row == 0:
            left.set_title("input", fontsize=9)
            right.set_title("attention", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
