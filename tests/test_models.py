import torch

from attnviz import ParallelAttention, SequentialAttention, attend


def test_seed_call_shape_now_normalises_over_the_sequence():
    """The article called its model on x of shape (3, input_dim): every weight came out 1. Not any more."""
    torch.manual_seed(0)
    model = SequentialAttention(10, 20, 5)
    out = model(torch.randn(3, 10))
    assert out.weights.shape == (3,)
    assert torch.allclose(out.weights.sum(), torch.tensor(1.0))
    assert not torch.allclose(out.weights, torch.ones(3))
    assert out.output.shape == (5,)


def test_sequential_mask_and_batch():
    torch.manual_seed(1)
    model = SequentialAttention(4, 8, 2)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6], dtype=torch.bool)
    out = model(x, mask)
    assert torch.all(out.weights[0, 3:] == 0)
    assert torch.allclose(out.weights.sum(-1), torch.ones(2))
    # padding cannot change the result: the first sequence alone gives the same numbers
    alone = model(x[0, :3])
    assert torch.allclose(alone.weights, out.weights[0, :3], atol=1e-6)
    assert torch.allclose(alone.output, out.output[0], atol=1e-6)
    # weights follow the seed's formula: softmax(w . tanh(W1 x)) over the sequence
    h = torch.tanh(model.proj(x[1]))
    assert torch.allclose(out.weights[1], torch.softmax(model.scorer(h).squeeze(-1), 0), atol=1e-6)
    assert torch.allclose(out.output[1], model.out((out.weights[1, :, None] * h).sum(0)), atol=1e-6)


def test_sequential_query_mode_is_similarity_attention():
    x = torch.randn(7, 5, dtype=torch.float64)
    q = torch.randn(5, dtype=torch.float64)
    model = SequentialAttention(5, similarity="euclidean", temperature=0.5).double()
    out = model(x, query=q)
    want = torch.softmax(-torch.linalg.vector_norm(x - q, dim=-1) / 0.5, 0)
    assert torch.allclose(out.weights, want)
    assert torch.allclose(out.output, want @ x)


def test_sequential_learns_to_find_the_marked_element():
    torch.manual_seed(0)
    model = SequentialAttention(4, 16, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)

    def batch(b=64, n=8):
        x = torch.randn(b, n, 4)
        x[..., 0] = 0.0
        pos = torch.randint(0, n, (b,))
        x[torch.arange(b), pos, 0] = 3.0  # the marker
        return x, x[torch.arange(b), pos, 1:2], pos

    for _ in range(150):
        x, target, _ = batch()
        loss = torch.nn.functional.mse_loss(model(x).output, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, _, pos = batch()
    w = model(x).weights
    assert (w.argmax(-1) == pos).float().mean() > 0.9
    assert w[torch.arange(64), pos].mean() > 0.5


def test_parallel_all_patches_at_once_grid_and_mask():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)  # (b, rows, cols, d)
    model = ParallelAttention(6, similarity="cosine", temperature=0.2).double()
    out = model(x)
    flat = x.reshape(2, 12, 6)
    ref = attend(flat, "cosine", 0.2)
    assert out.weights.shape == (2, 12, 12)
    assert torch.allclose(out.weights, ref.weights) and torch.allclose(out.output, ref.output)
    assert torch.allclose(out.received, ref.weights.mean(1))
    gist = flat.mean(1, keepdim=True)
    pool = torch.softmax(attend(gist, "cosine", 0.2, keys=flat).scores.squeeze(1) / 0.2, -1)
    assert torch.allclose(out.pool_weights, pool)
    assert torch.allclose(out.pooled, (pool[..., None] * flat).sum(1))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    out = model(flat, mask)
    assert torch.all(out.weights[1][:, 8:] == 0) and torch.all(out.pool_weights[1, 8:] == 0)
    assert torch.allclose(out.received[1, :8].sum(), torch.tensor(1.0, dtype=torch.float64))


def test_parallel_learned_pool_and_projection():
    torch.manual_seed(0)
    model = ParallelAttention(6, hidden_dim=8, output_dim=3, learned_pool=True)
    out = model(torch.randn(5, 6))
    assert out.output.shape == (5, 3) and out.pooled.shape == (3,)
    assert torch.allclose(out.pool_weights.sum(), torch.tensor(1.0))


def test_non_finite_queries_are_refused_not_nan():
    import pytest

    from attnviz.errors import InvalidParameter

    model = SequentialAttention(3, similarity="dot", temperature=1.0)
    with pytest.raises(InvalidParameter):
        model(torch.randn(4, 3), query=torch.tensor([float("nan"), 0.0, 0.0]))
    with pytest.raises(InvalidParameter):
        ParallelAttention(3, similarity="dot")(torch.full((4, 3), float("inf")))
