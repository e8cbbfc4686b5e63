pytest_plugins = ["xaikit.testing"]
