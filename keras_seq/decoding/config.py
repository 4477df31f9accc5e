"""`DecodingConfig`: the config-based equality, hashing and repr shared by the
decoding strategies and samplers (their state is their `get_config()`)."""


class DecodingConfig:
    """Base of `Greedy`, `BeamSearch` and `RandomSampler`.

    Subclasses implement `get_config()` (a dict of the constructor's
    arguments); equality, hashing, `repr` and `from_config` follow from it.
    """

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
