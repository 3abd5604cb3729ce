"""What the network is: layer specs with shapes and FLOPs, AlexNet, weights I/O."""
from .alexnet import Network, alexnet
from .layers import Layer
from .weights import Weights, WeightsError, init_weights, load_torch_state_dict, load_weights, save_weights

__all__ = ['Layer', 'Network', 'Weights', 'WeightsError', 'alexnet', 'init_weights', 'load_torch_state_dict',
           'load_weights', 'save_weights']
