"""PaddleOCR's ``SVTRNet`` (``ppocr/modeling/backbones/rec_svtrnet.py``) retyped in plain
``paddle.nn``: the ground truth for ``xinit.models.paddleocr.svtrnet`` and ``svtr_tiny``.

Read for names, shapes, init and the ``Local`` mixer's mask (a padded window per query,
cropped, -inf outside, a plain attribute added to the scores before the softmax), written
anew. Only what ``rec_svtrnet.yml`` uses: ``pope`` patch embedding (``sub_num`` 2),
``Local``/``Global`` mixers, ``patch_merging`` Conv or None, ``last_stage``. The Mlp, the
init rule, SequenceEncoder and CTCHead are :mod:`reference_paddleocr`'s."""

from __future__ import annotations

import functools


@functools.cache
def _classes():
    import numpy as np
    import paddle
    import reference_paddleocr as base
    from paddle import ParamAttr, nn
    from paddle.nn import functional as F
    from paddle.nn.initializer import Constant, KaimingNormal, KaimingUniform, TruncatedNormal

    shared = base._classes()
    trunc_normal_ = TruncatedNormal(std=0.02)

    class ConvBNLayer(nn.Layer):
        """SVTRNet's patch-embedding ConvBNLayer: ``bias_attr=None``, so the conv has a bias."""

        def __init__(self, cin, cout):
            super().__init__()
            attr = ParamAttr(initializer=KaimingUniform())
            self.conv = nn.Conv2D(cin, cout, 3, 2, 1, weight_attr=attr, bias_attr=None)
            self.norm = nn.BatchNorm2D(cout)
            self.act = nn.GELU()

        def forward(self, x):
            return self.act(self.norm(self.conv(x)))

    class Attention(nn.Layer):
        def __init__(self, dim, num_heads, mixer, hw, local_k, qkv_bias):
            super().__init__()
            self.num_heads, self.dim = num_heads, dim
            self.scale = (dim // num_heads) ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias_attr=qkv_bias)
            self.proj = nn.Linear(dim, dim)
            self.mixer = mixer
            if mixer == "Local":
                h, w = hw
                hk, wk = local_k
                padded = np.ones((h * w, h + hk - 1, w + wk - 1), np.float32)
                for i in range(h):
                    for j in range(w):
                        padded[i * w + j, i : i + hk, j : j + wk] = 0.0
                crop = padded[:, hk // 2 : h + hk // 2, wk // 2 : w + wk // 2]
                crop = paddle.to_tensor(crop.reshape(h * w, h * w))
                inf = paddle.full([h * w, h * w], float("-inf"), dtype="float32")
                self.mask = paddle.where(crop < 1, crop, inf).unsqueeze([0, 1])

        def forward(self, x):
            d = self.dim // self.num_heads
            qkv = self.qkv(x).reshape((0, -1, 3, self.num_heads, d)).transpose((2, 0, 3, 1, 4))
            q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
            attn = q.matmul(k.transpose((0, 1, 3, 2)))
            if self.mixer == "Local":
                attn = attn + self.mask
            attn = F.softmax(attn, axis=-1)
            x = attn.matmul(v).transpose((0, 2, 1, 3)).reshape((0, -1, self.dim))
            return self.proj(x)

    class Block(shared["Block"]):
        """The SVTR Block of :mod:`reference_paddleocr` (its forward) with this mixer."""

        def __init__(self, dim, num_heads, mixer, hw, local_k, mlp_ratio, qkv_bias, eps, prenorm):
            nn.Layer.__init__(self)
            self.norm1 = nn.LayerNorm(dim, epsilon=eps)
            self.mixer = Attention(dim, num_heads, mixer, hw, local_k, qkv_bias)
            self.norm2 = nn.LayerNorm(dim, epsilon=eps)
            self.mlp = shared["Mlp"](dim, int(dim * mlp_ratio))
            self.prenorm = prenorm

    class SubSample(nn.Layer):
        def __init__(self, cin, cout):
            super().__init__()
            attr = ParamAttr(initializer=KaimingNormal())
            self.conv = nn.Conv2D(cin, cout, 3, [2, 1], 1, weight_attr=attr)
            self.norm = nn.LayerNorm(cout)

        def forward(self, x):
            return self.norm(self.conv(x).flatten(2).transpose((0, 2, 1)))

    class PatchEmbed(nn.Layer):
        def __init__(self, cin, dim):
            super().__init__()
            self.proj = nn.Sequential(ConvBNLayer(cin, dim // 2), ConvBNLayer(dim // 2, dim))

        def forward(self, x):
            return self.proj(x).flatten(2).transpose((0, 2, 1))

    class SVTRNet(nn.Layer):
        def __init__(
            self,
            img_size=(32, 100),
            in_channels=3,
            embed_dim=(64, 128, 256),
            depth=(3, 6, 3),
            num_heads=(2, 4, 8),
            mixer=("Local",) * 6 + ("Global",) * 6,
            local_mixer=((7, 11),) * 3,
            patch_merging="Conv",
            mlp_ratio=4,
            qkv_bias=True,
            epsilon=1e-6,
            out_channels=192,
            out_char_num=25,
            last_stage=True,
            prenorm=True,
            last_drop=0.1,
        ):
            super().__init__()
            self.embed_dim, self.prenorm = list(embed_dim), prenorm
            self.patch_merging = patch_merging if patch_merging == "Conv" else None
            self.patch_embed = PatchEmbed(in_channels, embed_dim[0])
            self.HW = [img_size[0] // 4, img_size[1] // 4]
            h, w = self.HW
            self.pos_embed = self.create_parameter(
                shape=[1, h * w, embed_dim[0]], default_initializer=Constant(0.0)
            )
            self.add_parameter("pos_embed", self.pos_embed)
            merge = self.patch_merging is not None
            grids = [[h, w], [h // 2, w], [h // 4, w]] if merge else [[h, w]] * 3
            first = 0
            for s in range(3):
                blocks = [
                    Block(
                        embed_dim[s],
                        num_heads[s],
                        mixer[first + i],
                        grids[s],
                        local_mixer[s],
                        mlp_ratio,
                        qkv_bias,
                        epsilon,
                        prenorm,
                    )
                    for i in range(depth[s])
                ]
                first += depth[s]
                setattr(self, f"blocks{s + 1}", nn.LayerList(blocks))
                if merge and s < 2:
                    setattr(self, f"sub_sample{s + 1}", SubSample(embed_dim[s], embed_dim[s + 1]))
            self.grids, self.last_stage = grids, last_stage
            if last_stage:
                self.avg_pool = nn.AdaptiveAvgPool2D([1, out_char_num])
                self.last_conv = nn.Conv2D(embed_dim[2], out_channels, 1, bias_attr=False)
                self.hardswish = nn.Hardswish()
                self.dropout = nn.Dropout(p=last_drop, mode="downscale_in_infer")
            if not prenorm:
                self.norm = nn.LayerNorm(embed_dim[-1], epsilon=epsilon)
            trunc_normal_(self.pos_embed)
            self.apply(shared["svtr_init"])

        def forward(self, x):
            x = self.patch_embed(x) + self.pos_embed
            for s in range(3):
                for blk in getattr(self, f"blocks{s + 1}"):
                    x = blk(x)
                if self.patch_merging is not None and s < 2:
                    h, w = self.grids[s]
                    grid = x.transpose([0, 2, 1]).reshape([0, self.embed_dim[s], h, w])
                    x = getattr(self, f"sub_sample{s + 1}")(grid)
            if not self.prenorm:
                x = self.norm(x)
            if self.last_stage:
                h, w = self.grids[2]
                x = self.avg_pool(x.transpose([0, 2, 1]).reshape([0, self.embed_dim[2], h, w]))
                x = self.dropout(self.hardswish(self.last_conv(x)))
            return x

    return dict(locals())


def svtr_ctc(classes: int = 37, **backbone):
    """SVTRNet (``rec_svtrnet.yml``'s sizes by default, ``prenorm`` False as there), then
    SequenceEncoder(reshape) and CTCHead, as ``RecModel``."""
    import reference_paddleocr as base

    shared = base._classes()
    args = {"prenorm": False, **backbone}
    bb = _classes()["SVTRNet"](**args)
    width = args.get("out_channels", 192)
    neck = shared["SequenceEncoder"](width, "reshape")
    return shared["RecModel"](bb, neck, shared["CTCHead"](width, classes))
