"""Type stub of ``xinit``: the public names ``__init__.py`` serves lazily (its ``_LAZY``
table), for IDEs and type checkers. tests/core/test_public_api.py checks that both list the same."""

__version__: str

from . import blocks as blocks
from . import init as init
from . import layers as layers
from . import models as models
from . import presets as presets
from . import transformer as transformer
from ._apply import apply as apply
from ._build import build as build
from ._build import run as run
from ._diagnose import DiagnoseError as DiagnoseError
from ._diagnose import diagnose as diagnose
from ._lsuv import LSUVError as LSUVError
from ._lsuv import lsuv as lsuv
from ._parity import bn_parity as bn_parity
from ._parity import calibrate_batchnorm as calibrate_batchnorm
from ._parity import parity as parity
from ._parity import randomize_batchnorm as randomize_batchnorm
from ._port import PortError as PortError
from ._port import port as port
from ._port_parity import port_parity as port_parity
from ._stats import stats as stats
from ._summary import summary as summary
from .backends.common.sharding import ShardingError as ShardingError
from .blocks import Residual as Residual
from .blocks import Sequential as Sequential
from .checkpoints.errors import CheckpointError as CheckpointError
from .checkpoints.errors import CheckpointWriteError as CheckpointWriteError
from .checkpoints.errors import UnsafeCheckpointError as UnsafeCheckpointError
from .errors import ArgumentError as ArgumentError
from .errors import DefaultsError as DefaultsError
from .errors import FrameworkError as FrameworkError
from .errors import FrameworkNotInstalledError as FrameworkNotInstalledError
from .errors import InitializerError as InitializerError
from .errors import UnknownArgumentError as UnknownArgumentError
from .errors import UnknownNameError as UnknownNameError
from .errors import XinitError as XinitError
from .graph import Graph as Graph
from .graph import feature_extractor as feature_extractor
from .graph import sub_spec as sub_spec
from .graph import truncate as truncate
from .initializers import gain as gain
from .layers import SpecError as SpecError
from .memory import InsufficientMemoryError as InsufficientMemoryError
from .namemap import NameMapError as NameMapError
from .native import NativeModelError as NativeModelError
from .policy import Policy as Policy
from .policy import PolicyError as PolicyError
from .policy import Rule as Rule
from .sampling import sample as sample
from .state import StateError as StateError
from .state import load_state_dict as load_state_dict
from .state import state_dict as state_dict
from .state import transfer as transfer
