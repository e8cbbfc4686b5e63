"""An example xaikit plugin: copy, rename, and replace the model/method/dataset with yours."""
