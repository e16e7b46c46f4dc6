"""The kernel: MNIST, SmallCNN, center losses, PGD, training, centers and their geometry. Imports nothing
from lib.analysis or lib.pipeline."""
