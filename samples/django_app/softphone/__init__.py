"""A Django app that places softphone calls with one PureCloudWebrtcSdk per process (see README.rst)."""
