"""cupy.cuda, as far as minivit uses it: one pretend device."""


class runtime:  # noqa: N801  (a module in CuPy)
    @staticmethod
    def getDeviceCount():  # noqa: N802  (CuPy's name)
        return 1


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
