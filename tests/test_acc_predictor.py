"""Surrogates on known functions: interpolation, ranking recovery, determinism, input errors."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from acc_predictor import acc_predictor_names, correlation, get_acc_predictor
from acc_predictor.encoding import Projection, encode, fit_encoding
from search_space.ofa import EXPAND_GENES, KERNEL_GENES, RESOLUTION_GENE, OFASearchSpace

SPACE = OFASearchSpace()
# quick settings so the whole file runs in seconds; the defaults are benchmarked by scripts/
FAST = {"carts": {"n_trees": 60}, "mlp": {"max_epochs": 300, "patience": 30}}
FIVE = ("rbf", "gp", "carts", "mlp", "as")


def additive_error(X: np.ndarray) -> np.ndarray:
    """A monotone "top-1 error": larger kernels, expansions, depths and resolutions lower it."""
    X = SPACE.canonical(X)
    active = SPACE.active_layers(X)
    size = ((X[:, KERNEL_GENES] + 1) * active).sum(1) + 1.5 * ((X[:, EXPAND_GENES] + 1) * active).sum(1)
    return 40.0 - 0.3 * size - 0.2 * X[:, RESOLUTION_GENE]


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X = SPACE.sample(n, np.random.default_rng(seed))
    return X, additive_error(X)


def build(name: str, **options):
    return get_acc_predictor(name, **{**FAST.get(name, {}), **options})


def test_factory_builds_every_model():
    for name in FIVE + ("gp_additive",):
        assert name in acc_predictor_names()
        model = get_acc_predictor(name)
        assert model.search_space == OFASearchSpace()
    assert get_acc_predictor("as").pool == ("rbf", "gp", "carts", "mlp")
    with pytest.raises(ValueError, match="unknown accuracy predictor 'svm'"):
        get_acc_predictor("svm")
    with pytest.raises(ValueError, match="bad options"):
        get_acc_predictor("rbf", bogus=1)
    with pytest.raises(ValueError, match="unknown encoding"):
        get_acc_predictor("rbf", encoding="binary")


def test_rbf_interpolates_training_points():
    X, _ = data(120, 0)
    y = np.random.default_rng(1).normal(20, 3, len(X))  # arbitrary values: interpolation must still hit them
    for encoding in ("int", "onehot", "ordinal"):
        model = get_acc_predictor("rbf", encoding=encoding).fit(X, y)
        np.testing.assert_allclose(model.predict(X), y, atol=1e-4)


def test_rbf_matches_scipy_cubic_with_linear_tail():
    """With full-rank integer features the rotation is exact: same model as scipy on raw genomes."""
    from scipy.interpolate import RBFInterpolator

    X, y = data(150, 2)
    Xt, _ = data(50, 3)
    ours = get_acc_predictor("rbf").fit(X, y).predict(Xt)
    ref = RBFInterpolator(X.astype(float), y, kernel="cubic", degree=1, smoothing=1e-8)(Xt.astype(float))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "min_tau"),
    [("rbf", 0.85), ("gp", 0.85), ("gp_additive", 0.95), ("carts", 0.5), ("mlp", 0.6), ("rbf_onehot", 0.75)],
)
def test_recovers_monotone_ranking(name, min_tau):
    X, y = data(150, 4)
    Xt, yt = data(300, 5)
    pred = build(name).fit(X, y).predict(Xt)
    assert pred.shape == (300,)
    assert stats.kendalltau(pred, yt).statistic > min_tau


def test_adaptive_switching_picks_and_refits_the_winner():
    X, y = data(80, 6)
    Xt, yt = data(100, 7)
    model = build("as", pool=("rbf", "carts"), n_folds=4, pool_options={"carts": {"n_trees": 30}}).fit(X, y)
    assert model.winner in ("rbf", "carts")
    assert set(model.scores) == {"rbf", "carts"}
    s = {k: v["tau_mean"] - v["tau_std"] for k, v in model.scores.items()}
    assert s[model.winner] == max(s.values())
    opts = {"n_trees": 30} if model.winner == "carts" else {}
    refit = get_acc_predictor(model.winner, seed=0, **opts).fit(X, y)
    np.testing.assert_allclose(model.predict(Xt), refit.predict(Xt))
    assert stats.kendalltau(model.predict(Xt), yt).statistic > 0.5
    with pytest.raises(ValueError, match="pool"):
        get_acc_predictor("as", pool=("rbf", "nope"))


def test_adaptive_switching_rejects_a_model_that_ranks_backwards(monkeypatch):
    import acc_predictor
    from acc_predictor.rbf import RBF

    class Backwards(RBF):  # rbf's predictions negated: its fold taus are exactly rbf's, negated
        def _predict(self, F):
            return -super()._predict(F)

    monkeypatch.setitem(acc_predictor._REGISTRY, "backwards", Backwards)
    X, y = data(60, 10)
    model = build("as", pool=("backwards", "rbf"), n_folds=4).fit(X, y)
    assert model.winner == "rbf"
    assert model.scores["rbf"]["tau_mean"] > 0.5
    assert model.scores["backwards"]["tau_mean"] == pytest.approx(-model.scores["rbf"]["tau_mean"])


@pytest.mark.parametrize("n", [10, 14, 20])
def test_adaptive_switching_on_a_small_archive_still_rejects_a_backwards_model(monkeypatch, n):
    # with one point per fold every tau was NaN (scored 0) and the first pool member always won
    import acc_predictor
    from acc_predictor.rbf import RBF

    class Backwards(RBF):
        def _predict(self, F):
            return -super()._predict(F)

    monkeypatch.setitem(acc_predictor._REGISTRY, "backwards", Backwards)
    X, y = data(n, 10)
    model = build("as", pool=("backwards", "rbf"), n_folds=10).fit(X, y)
    assert model.winner == "rbf" and model.scores["rbf"]["tau_mean"] > 0


def test_adaptive_switching_passes_an_explicit_encoding_to_its_pool():
    X, y = data(40, 11)
    Xt = data(30, 12)[0]
    model = get_acc_predictor("as", pool=("rbf",), n_folds=2, encoding="onehot").fit(X, y)
    onehot = get_acc_predictor("rbf", encoding="onehot").fit(X, y)
    assert model.model.encoding.name == "onehot"
    np.testing.assert_allclose(model.predict(Xt), onehot.predict(Xt))
    assert get_acc_predictor("as", pool=("gp_additive",), n_folds=2).fit(X, y).model.encoding.name == "onehot"


@pytest.mark.slow
def test_adaptive_switching_default_pool():
    X, y = data(100, 8)
    model = get_acc_predictor("as").fit(X, y)
    assert model.winner in ("rbf", "gp", "carts", "mlp")
    Xt, yt = data(200, 9)
    assert stats.kendalltau(model.predict(Xt), yt).statistic > 0.8


def test_carts_on_a_few_points_fits_without_a_library_warning():
    # scikit-learn warned about a low number of "bootstrap samples" (the trees draw none) below 10 points: with
    # --predictor as on a small archive msunas printed it twice per iteration, once per cross-validation fold
    import warnings

    X, y = data(6, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("carts").fit(X, y)
        build("as", pool=("rbf", "carts"), pool_options={"carts": FAST["carts"]}).fit(*data(10, 14))


def test_adaptive_switching_on_too_few_points_says_so():
    # it used to fail on 3 points with "need at least 2 training points, got 1" (a fold's training set)
    with pytest.raises(ValueError, match="as: cross-validation needs at least 4 training points, got 3"):
        build("as").fit(*data(3, 15))
    assert build("as", pool=("rbf", "gp")).fit(*data(4, 15)).winner in ("rbf", "gp")


@pytest.mark.parametrize("name", ["carts", "mlp", "gp_additive"])
def test_deterministic_for_a_seed(name):
    X, y = data(60, 10)
    Xt, _ = data(40, 11)
    a = build(name, seed=3).fit(X, y).predict(Xt)
    b = build(name, seed=3).fit(X, y).predict(Xt)
    np.testing.assert_array_equal(a, b)
    if name != "gp_additive":  # the GP's seed only matters with restarts
        c = build(name, seed=4).fit(X, y).predict(Xt)
        assert not np.allclose(a, c)


@pytest.mark.parametrize("name", FIVE + ("gp_additive",))
def test_bad_inputs_are_value_errors(name):
    X, y = data(20, 12)
    model = build(name)
    with pytest.raises(ValueError, match="before fit"):
        model.predict(X)
    with pytest.raises(ValueError, match="y must have shape"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"X must have shape \(n, 46\)"):
        model.fit(X[:, :-1], y)
    X_out = X.copy()
    X_out[0, RESOLUTION_GENE] = 99
    with pytest.raises(ValueError, match="outside the search space"):
        model.fit(X_out, y)
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X, y_nan)


def test_unused_layer_genes_do_not_change_predictions():
    X, y = data(100, 13)
    Xt, _ = data(30, 14)
    noisy = Xt.copy()
    inactive = ~SPACE.active_layers(Xt)
    rng = np.random.default_rng(0)
    noisy[:, KERNEL_GENES] = np.where(inactive, rng.integers(0, 3, inactive.shape), Xt[:, KERNEL_GENES])
    noisy[:, EXPAND_GENES] = np.where(inactive, rng.integers(0, 3, inactive.shape), Xt[:, EXPAND_GENES])
    assert not np.array_equal(noisy, Xt)
    for name in ("rbf", "gp", "gp_additive", "rbf_onehot"):
        model = build(name).fit(X, y)
        np.testing.assert_allclose(model.predict(noisy), model.predict(Xt))


def test_onehot_zeroes_skipped_layers():
    x = SPACE.smallest()  # depth 2 everywhere: layers 2, 3 of each stage skipped
    F = encode(fit_encoding("onehot", SPACE), SPACE, x)
    assert F.shape == (1, 20 * 3 + 20 * 3 + len(SPACE.resolutions))
    kernel = F[0, :60].reshape(20, 3)
    assert kernel.sum() == 10 and kernel.reshape(5, 4, 3)[:, 2:].sum() == 0
    assert np.array_equal(kernel.reshape(5, 4, 3)[:, :2, 0], np.ones((5, 2)))  # kernel 3 = first choice


def test_gp_survives_constant_columns():
    X, y = data(60, 15)
    X[:, RESOLUTION_GENE] = 2  # a constant column: DACE's standardisation divided by zero here
    pred = get_acc_predictor("gp").fit(X, y).predict(X)
    assert np.isfinite(pred).all()
    assert stats.kendalltau(pred, y).statistic > 0.9


def test_generic_integer_space():
    """An NSGA-Net-like bit string: no canonical(), only xl/xu; int and onehot encodings work."""
    space = SimpleNamespace(name="bits", n_var=12, xl=np.zeros(12, dtype=int), xu=np.ones(12, dtype=int))
    rng = np.random.default_rng(16)
    X = rng.integers(0, 2, size=(80, 12))
    w = np.arange(1, 13)
    y = X @ w
    Xt = rng.integers(0, 2, size=(50, 12))
    for name, options in (
        ("rbf", {}),
        ("gp", {}),
        ("rbf", {"encoding": "onehot"}),
        ("gp_additive", {}),
        ("carts", {"n_trees": 30}),
    ):
        pred = get_acc_predictor(name, search_space=space, **options).fit(X, y).predict(Xt)
        assert stats.kendalltau(pred, Xt @ w).statistic > 0.7, name
    with pytest.raises(ValueError, match="needs the OFA search space"):
        get_acc_predictor("rbf", search_space=space, encoding="ordinal")


def test_correlation_against_hand_values():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 3.0, 2.0, 5.0])
    # Kendall: 5 concordant, 1 discordant pair of 6 -> (5 - 1) / 6; Spearman: 1 - 6*2/(4*15) = 0.8
    expected = {"rmse": np.sqrt(3 / 4), "rho": 0.8, "tau": 4 / 6}
    for p, t in ((pred, true), (pred[:, None], true), (pred[:, None], true[:, None])):
        got = correlation(p, t)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value)
    with pytest.raises(ValueError, match="equal length"):
        correlation(pred, true[:3])
    with pytest.raises(ValueError, match="equal length"):
        correlation(np.ones((4, 2)), np.ones(8))


def test_projection_is_a_rotation_for_full_rank_data():
    F = np.random.default_rng(17).normal(size=(30, 5))
    Z = Projection(F)(F)
    assert Z.shape == (30, 5)
    d_before = np.linalg.norm(F[:, None] - F[None], axis=-1)
    d_after = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    np.testing.assert_allclose(d_after, d_before, atol=1e-10)
    dependent = np.hstack([F, F[:, :2] + F[:, 2:4]])  # rank 5 in 7 columns
    assert Projection(dependent).rank == 5


@pytest.mark.parametrize("n", [20, 30, 47])
def test_gp_ranks_with_fewer_points_than_features_need(n):
    # below 48 points (46 genes + 2) the GP fell back to a constant trend whose likelihood is best where
    # the correlation is the identity: every prediction was the training mean
    from scipy.stats import kendalltau

    def target(X):
        Z = X / np.maximum(SPACE.xu, 1)
        weights = np.random.default_rng(7).normal(size=SPACE.n_var)
        return Z @ weights + 2.0 * np.sin(3 * Z[:, :23].sum(1)) * Z[:, 23:].mean(1)

    X = SPACE.sample(n, np.random.default_rng(2))
    Xt = SPACE.sample(400, np.random.default_rng(1))
    pred = get_acc_predictor("gp").fit(X, target(X)).predict(Xt)
    assert np.std(pred) > 0.3 * np.std(target(Xt))
    assert kendalltau(pred, target(Xt)).statistic > 0.3  # the old fit: 0.06 at n = 30


def test_correlation_of_a_constant_is_nan_without_a_warning():
    # a surrogate predicting one value (or an archive of equal errors, as digits' early runs): rank correlation is
    # undefined; scipy said so in a warning line on every iteration of the search
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pred, true in (([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]), ([0.0, 1.0, 2.0], [5.0, 5.0, 5.0])):
            q = correlation(np.array(pred), np.array(true))
            assert np.isnan(q["rho"]) and np.isnan(q["tau"])
            assert q["rmse"] == pytest.approx(np.sqrt(np.mean((np.array(pred) - np.array(true)) ** 2)))


def test_gp_additive_noise_weights():
    """Equal weights are the plain model bit for bit; a heavily down-weighted outlier is no longer followed."""
    X, y = data(60, 12)
    y = y.copy()
    y[0] += 5.0  # one outlier, 5 points off the additive truth
    plain = build("gp_additive").fit(X, y)
    ones = build("gp_additive")
    ones.noise_weights = np.ones(len(y))
    np.testing.assert_array_equal(ones.fit(X, y).predict(X), plain.predict(X))
    distrust = build("gp_additive")
    distrust.noise_weights = np.r_[1e6, np.ones(len(y) - 1)]
    truth = additive_error(X[:1])[0]
    assert abs(distrust.fit(X, y).predict(X[:1])[0] - truth) < 0.5 * abs(plain.predict(X[:1])[0] - truth)


@pytest.mark.parametrize("name", ["mlp", "mlp_onehot"])
def test_mlp_on_constant_targets_predicts_the_constant(name):
    # every architecture measured at 25% error: the other models predict 25 everywhere; the MLP returned
    # its untrained network's noise around it (25.02, 24.99, ...), a ranking made of nothing
    X, _ = data(30, 17)
    Xt, _ = data(10, 18)
    pred = build(name).fit(X, np.full(len(X), 25.0)).predict(Xt)
    np.testing.assert_array_equal(pred, np.full(len(Xt), 25.0))


@pytest.mark.parametrize("bounds", [(1.0, 0.5), (-1.0, 1.0), (0.0, 1.0), (float("nan"), 1.0), (1.0, float("inf"))])
def test_gp_bad_theta_bounds_say_so(bounds):
    # (1, 0.5) failed at fit with pydacefit's bare "Exception: Theta should always be in bounds"; NaN made LAPACK
    # print "DLASCL parameter number 4 had an illegal value" and fitted anyway; a negative or zero theta is no
    # Gaussian correlation
    with pytest.raises(ValueError, match="gp: theta_bounds must be finite with 0 < low <= high"):
        get_acc_predictor("gp", theta_bounds=bounds)
    assert get_acc_predictor("gp", theta_bounds=(2.0, 2.0)).fit(*data(20, 19)).predict(data(3, 20)[0]).shape == (3,)


def test_mlp_with_a_large_val_fraction_still_trains_on_a_point():
    # val_fraction 0.95 of 10 points held all 10 out: the network was "trained" on an empty set (a NaN loss, only
    # weight decay moving it: predictions within 0.05 of the untrained network's); now at least one point is
    X = SPACE.sample(10, np.random.default_rng(21))
    y = np.linspace(20.0, 30.0, 10)
    trained = build("mlp", val_fraction=0.95, max_epochs=300).fit(X, y).predict(X)
    untrained = build("mlp", val_fraction=0.95, max_epochs=0).fit(X, y).predict(X)
    assert np.abs(trained - untrained).max() > 0.5


@pytest.mark.parametrize("options, message", [
    ({"smoothing": -1.0}, "smoothing must be a finite number >= 0"),
    ({"smoothing": float("nan")}, "smoothing must be a finite number >= 0"),
    ({"degree": -1}, "the cubic kernel needs an integer degree >= 1"),  # scipy only warned, predictions swung
    ({"kernel": "quintic", "degree": 1}, "the quintic kernel needs an integer degree >= 2"),
    ({"degree": 1.5}, "integer degree"),
    ({"kernel": "gaussian"}, "kernel must be one of"),  # it needs an epsilon that rbf never passes
])
def test_rbf_options_scipy_would_misuse_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        get_acc_predictor("rbf", search_space=OFASearchSpace(), **options)


def test_carts_and_as_options_that_were_quietly_changed_are_refused():
    with pytest.raises(ValueError, match="integer n_trees"):
        get_acc_predictor("carts", search_space=OFASearchSpace(), n_trees=2.5)
    with pytest.raises(ValueError, match="names a surrogate twice"):
        get_acc_predictor("as", search_space=OFASearchSpace(), pool=("rbf", "rbf"))
    with pytest.raises(ValueError, match=r"pool_options for \['gpp'\]"):
        get_acc_predictor("as", search_space=OFASearchSpace(), pool=("rbf", "gp"), pool_options={"gpp": {}})
    model = get_acc_predictor("as", search_space=OFASearchSpace(), pool=("rbf", "gp"), pool_options={"gp": {}})
    assert model.pool == ("rbf", "gp")
