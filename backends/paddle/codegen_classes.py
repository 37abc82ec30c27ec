"""The classes a Paddle file of the code export defines where no ``paddle.nn`` layer computes
what xinit's Paddle build computes (as source text; light: nothing imported): PyTorch's
RMSNorm, InstanceNorm with running statistics, and Upsample by PyTorch's resize rule."""

from __future__ import annotations

from ..common.codegen import RESIZE_MATRIX

RMSNORM = '''class RMSNorm(nn.Layer):
    """PyTorch's nn.RMSNorm (Paddle has no layer): x / sqrt(mean(x**2) + eps) over the last
    dims ``normalized_shape``, times ``weight``; eps None: the input dtype's machine epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True):
        super().__init__()
        shape = [normalized_shape] if isinstance(normalized_shape, int) else normalized_shape
        self.axes, self.eps = list(range(-len(shape), 0)), eps
        one = nn.initializer.Constant(1.0)
        affine = elementwise_affine
        self.weight = self.create_parameter(shape, default_initializer=one) if affine else None

    def forward(self, x):
        axes = [x.ndim + a for a in self.axes]
        eps = float(np.finfo(str(x.dtype).split(".")[-1]).eps) if self.eps is None else self.eps
        y = x * paddle.rsqrt((x * x).mean(axis=axes, keepdim=True) + eps)
        return y * self.weight if self.weight is not None else y
'''


UPSAMPLE = (
    RESIZE_MATRIX
    + '''

class Upsample(nn.Layer):
    """PyTorch's nn.Upsample in Paddle, one spatial axis at a time as a product with its
    resize matrix (Paddle's own interpolate rounds the source index otherwise)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=False):
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x):
        dims = x.ndim - 2
        for axis, n in enumerate(x.shape[2:], start=2):
            if self.size is not None:
                o = self.size if isinstance(self.size, int) else self.size[axis - 2]
                ratio = n / o
            else:
                f = self.scale_factor
                f = float(f if isinstance(f, (int, float)) else f[axis - 2])
                o, ratio = int(math.floor(n * f)), 1.0 / f
            m = resize_matrix(n, o, ratio, self.mode, self.align_corners).astype(np.float32)
            perm = [i for i in range(dims + 2) if i != axis] + [axis]
            back = [int(i) for i in np.argsort(perm)]
            y = paddle.matmul(x.transpose(perm), paddle.to_tensor(m.T, dtype=x.dtype))
            x = y.transpose(back)
        return x
'''
)


RUNNING_INSTANCENORM = '''class RunningInstanceNorm(nn.Layer):
    """PyTorch's InstanceNorm with running statistics (Paddle's keeps none): ``scale``,
    ``bias``, ``_mean``, ``_variance`` named as Paddle's layers. Training: each sample's
    statistics, the running ones moved by their batch average (unbiased variance); eval:
    the running ones."""

    def __init__(self, num_features: int, eps=1e-5, momentum=0.1, affine: bool = False):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        c, one = [num_features], nn.initializer.Constant(1.0)
        self.scale = self.create_parameter(c, default_initializer=one) if affine else None
        self.bias = self.create_parameter(c, is_bias=True) if affine else None
        keep, zero = paddle.ParamAttr(trainable=False), nn.initializer.Constant(0.0)
        self._mean = self.create_parameter(c, attr=keep, default_initializer=zero)
        self._variance = self.create_parameter(c, attr=keep, default_initializer=one)
        self._mean.stop_gradient = self._variance.stop_gradient = True

    def forward(self, x):
        shape = [1, -1] + [1] * (x.ndim - 2)
        if self.training:
            axes = list(range(2, x.ndim))
            mean = x.mean(axis=axes, keepdim=True)
            var = ((x - mean) ** 2).mean(axis=axes, keepdim=True)
            n = float(np.prod(x.shape[2:]))
            with paddle.no_grad():
                m = self.momentum
                unbiased = var * (n / max(n - 1.0, 1.0))
                new_mean = (1 - m) * self._mean + m * mean.mean(axis=0).reshape([-1])
                new_var = (1 - m) * self._variance + m * unbiased.mean(axis=0).reshape([-1])
                paddle.assign(new_mean, self._mean)
                paddle.assign(new_var, self._variance)
        else:
            mean, var = self._mean.reshape(shape), self._variance.reshape(shape)
        y = (x - mean) / paddle.sqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale.reshape(shape) + self.bias.reshape(shape)
        return y
'''


__all__ = ["RMSNORM", "UPSAMPLE", "RUNNING_INSTANCENORM"]
