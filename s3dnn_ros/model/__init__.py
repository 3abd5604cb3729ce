"""What the network is: layer specs with shapes and FLOPs, AlexNet, weights I/O."""
from .alexnet import alexnet, Network
from .layers import Layer
from .weights import (init_weights, load_torch_state_dict, load_weights, save_weights, Weights,
                      WeightsError)

__all__ = ['Layer', 'Network', 'Weights', 'WeightsError', 'alexnet', 'init_weights',
           'load_torch_state_dict', 'load_weights', 'save_weights']
