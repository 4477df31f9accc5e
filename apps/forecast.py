"""Forecast next year's sunspot number with a SimpleRNN (sequence-to-one regression).

Reads the yearly sunspot numbers 1700-2008 shipped with keras_seq
(`keras_seq/datasets/sunspots.csv`, public domain, NOAA via statsmodels),
turns them into windows of the previous `--window` years -> the next year,
trains `keras_seq.layers.SimpleRNN` -> Dense(1) on the years up to 1928,
picks the epoch by the validation years (1929-1958) and reports the mean
absolute error on the test years (1959-2008) next to two naive forecasts:
"same as last year" and "same as one solar cycle (11 years) ago".

Usage:

    python apps/forecast.py
    python apps/forecast.py --window 24 --units 48 --epochs 400 --seed 3
"""

import argparse
import csv
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras_seq  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_seq  # noqa: F401

import numpy as np  # noqa: E402

SUNSPOTS = os.path.join(os.path.dirname(os.path.abspath(keras_seq.__file__)), "datasets", "sunspots.csv")
VALID_FROM, TEST_FROM = 1929, 1959


def load_sunspots(path=SUNSPOTS):
    """Years and yearly sunspot numbers as two NumPy arrays."""
    years, values = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            years.append(int(float(row["YEAR"])))
            values.append(float(row["SUNACTIVITY"]))
    years, values = np.asarray(years), np.asarray(values, dtype="float32")
    if len(years) < 100 or np.any(np.diff(years) != 1):
        raise ValueError(f"{path}: expected consecutive yearly rows")
    return years, values


def make_windows(values, years, window):
    """Windows `[N, window, 1]`, targets `[N]` and the target years `[N]`."""
    x = np.stack([values[i : i + window] for i in range(len(values) - window)])[..., None]
    y = values[window:]
    return x.astype("float32"), y.astype("float32"), years[window:]


def build_model(window, units, seed):
    import keras

    from keras_seq.layers import SimpleRNN

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((window, 1)),
            SimpleRNN(units, name="rnn"),  # sequence -> its last state
            keras.layers.Dense(1, name="forecast"),
        ],
        name="sunspot_forecaster",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=20, help="years of history per forecast")
    parser.add_argument("--units", type=int, default=32, help="SimpleRNN units")
    parser.add_argument("--epochs", type=int, default=300, help="most epochs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.window < 1 or args.units < 1 or args.epochs < 1:
        parser.error("--window, --units and --epochs must be >= 1")

    import keras

    years, values = load_sunspots()
    x, y, target_years = make_windows(values, years, args.window)
    train = target_years < VALID_FROM
    valid = (target_years >= VALID_FROM) & (target_years < TEST_FROM)
    test = target_years >= TEST_FROM
    # Scale with training statistics only.
    scale = float(values[years < VALID_FROM].std())
    shift = float(values[years < VALID_FROM].mean())

    def norm(a):
        return (a - shift) / scale

    model = build_model(args.window, args.units, args.seed)
    model.compile(keras.optimizers.Adam(3e-3, global_clipnorm=1.0), loss="mse")
    stop = keras.callbacks.EarlyStopping(patience=40, restore_best_weights=True)
    model.fit(norm(x[train]), norm(y[train]), validation_data=(norm(x[valid]), norm(y[valid])),
              epochs=args.epochs, batch_size=16, verbose=0, callbacks=[stop])
    predicted = model.predict(norm(x[test]), verbose=0)[:, 0] * scale + shift

    def mae(p):
        return float(np.mean(np.abs(p - y[test])))

    index = np.nonzero(test)[0] + args.window  # positions in `values` of the test targets
    last_value = values[index - 1]
    cycle_ago = values[index - 11]
    print(f"sunspots {years[0]}-{years[-1]}: train targets {train.sum()} years (< {VALID_FROM}), "
          f"valid {valid.sum()}, test {test.sum()} ({TEST_FROM}-{years[-1]})")
    epochs_run = stop.stopped_epoch + 1 if stop.stopped_epoch else args.epochs
    print(f"SimpleRNN({args.units}) over {args.window} years: {epochs_run} epochs, weights of "
          "the epoch with the lowest validation loss")
    print(f"test MAE  SimpleRNN: {mae(predicted):6.2f}")
    print(f"test MAE  last value (naive): {mae(last_value):6.2f}")
    print(f"test MAE  value 11 years ago: {mae(cycle_ago):6.2f}")
    print("year  actual  forecast  last-value")
    for year, actual, p, naive in list(zip(target_years[test], y[test], predicted, last_value))[-8:]:
        print(f"{year}  {actual:6.1f}  {p:8.1f}  {naive:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
