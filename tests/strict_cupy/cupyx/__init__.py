"""cupyx of the strict CuPy stand-in (see ../cupy): only cupyx.scipy.special.erf."""
