"""PaddleOCR's recognition heads paired with ResNet45, retyped in plain ``paddle.nn``: the
ground truth for ``xinit.models.paddleocr.rec_visionlan_head``.

``heads/rec_visionlan_head.py`` (read for module names, shapes, init and the eval forward,
written anew): :class:`VLHead` with ``MLM_VRM`` = ``MLM`` (training only, kept here for its
state-dict keys), ``SequenceModeling`` (``Transformer_Encoder``), ``Prediction`` (``pp``,
``pp_share``, ``w_vrm``, ``w_share``). Only the eval forward is written; :func:`vl_model`
puts it on :func:`reference_models.paddle_resnet45` as ``configs/rec/rec_r45_visionlan.yml``.
The encoder's widths are arguments here (PaddleOCR fixes 512, 8 heads, 2048) so the tests can
run it narrow. Paddle is imported inside :func:`_classes`.
"""

from __future__ import annotations

import functools


@functools.cache
def _classes():  # noqa: C901 - one namespace of retyped classes, built once
    import numpy as np
    import paddle
    from paddle import ParamAttr, nn
    from paddle.nn import functional as F
    from paddle.nn.initializer import Normal, XavierNormal

    class PositionalEncoding(nn.Layer):
        """A persistable buffer ``pos_table`` (1, n_position, d) of sines and cosines."""

        def __init__(self, d, n_position):
            super().__init__()
            angle = [
                [p / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for p in range(n_position)
            ]
            table = np.array(angle)
            table[:, 0::2] = np.sin(table[:, 0::2])
            table[:, 1::2] = np.cos(table[:, 1::2])
            self.register_buffer("pos_table", paddle.to_tensor(table[None], dtype="float32"))

        def forward(self, x):
            return x + self.pos_table[:, : x.shape[1]]

    class MultiHeadAttention(nn.Layer):
        def __init__(self, n_head, d_model, d_k, d_v):
            super().__init__()
            self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
            qk = ParamAttr(initializer=Normal(0.0, np.sqrt(2.0 / (d_model + d_k))))
            v = ParamAttr(initializer=Normal(0.0, np.sqrt(2.0 / (d_model + d_v))))
            self.w_qs = nn.Linear(d_model, n_head * d_k, weight_attr=qk)
            self.w_ks = nn.Linear(d_model, n_head * d_k, weight_attr=qk)
            self.w_vs = nn.Linear(d_model, n_head * d_v, weight_attr=v)
            self.temperature = d_k**0.5
            self.layer_norm = nn.LayerNorm(d_model)
            xavier = ParamAttr(initializer=XavierNormal())
            self.fc = nn.Linear(n_head * d_v, d_model, weight_attr=xavier)

        def forward(self, x):
            b, n, _ = x.shape
            h, dk, dv = self.n_head, self.d_k, self.d_v

            def heads(t, d):  # (b, n, h*d) -> (h*b, n, d), head-major as PaddleOCR
                t = t.reshape([b, n, h, d]).transpose([2, 0, 1, 3])
                return t.reshape([h * b, n, d])

            q, k, v = heads(self.w_qs(x), dk), heads(self.w_ks(x), dk), heads(self.w_vs(x), dv)
            scores = paddle.bmm(q, k.transpose([0, 2, 1])) / self.temperature
            out = paddle.bmm(F.softmax(scores, axis=2), v)
            out = out.reshape([h, b, n, dv]).transpose([1, 2, 0, 3]).reshape([b, n, h * dv])
            return self.layer_norm(self.fc(out) + x)

    class PositionwiseFeedForward(nn.Layer):
        def __init__(self, d_in, d_hid):
            super().__init__()
            self.w_1 = nn.Conv1D(d_in, d_hid, 1)
            self.w_2 = nn.Conv1D(d_hid, d_in, 1)
            self.layer_norm = nn.LayerNorm(d_in)

        def forward(self, x):
            y = self.w_2(F.relu(self.w_1(x.transpose([0, 2, 1]))))
            return self.layer_norm(y.transpose([0, 2, 1]) + x)

    class EncoderLayer(nn.Layer):
        def __init__(self, d_model, d_inner, n_head):
            super().__init__()
            d_k = d_model // n_head
            self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_k)
            self.pos_ffn = PositionwiseFeedForward(d_model, d_inner)

        def forward(self, x):
            return self.pos_ffn(self.slf_attn(x))

    class TransformerEncoder(nn.Layer):
        def __init__(self, n_layers, n_position, d_model, n_head, d_inner):
            super().__init__()
            self.position_enc = PositionalEncoding(d_model, n_position)
            self.layer_stack = nn.LayerList(
                [EncoderLayer(d_model, d_inner, n_head) for _ in range(n_layers)]
            )
            self.layer_norm = nn.LayerNorm(d_model, epsilon=1e-6)

        def forward(self, x):
            x = self.position_enc(x)
            for layer in self.layer_stack:
                x = layer(x)
            return self.layer_norm(x)

    class PPLayer(nn.Layer):
        def __init__(self, n_dim, n_characters, n_position):
            super().__init__()
            self.n_characters = n_characters
            self.f0_embedding = nn.Embedding(n_characters, n_dim)
            self.w0 = nn.Linear(n_characters, n_position)
            self.wv = nn.Linear(n_dim, n_dim)
            self.we = nn.Linear(n_dim, n_characters)

        def forward(self, enc):
            order = paddle.arange(self.n_characters, dtype="int64")
            order = self.f0_embedding(order.unsqueeze(0).expand([enc.shape[0], -1]))
            t = self.w0(order.transpose([0, 2, 1])).transpose([0, 2, 1])
            t = self.we(paddle.tanh(t + self.wv(enc)))
            weights = F.softmax(t.transpose([0, 2, 1]), axis=2)
            return paddle.bmm(weights, enc)

    class Prediction(nn.Layer):
        def __init__(self, n_dim, n_position, n_characters, n_class):
            super().__init__()
            self.pp = PPLayer(n_dim, n_characters, n_position)
            self.pp_share = PPLayer(n_dim, n_characters, n_position)
            self.w_vrm = nn.Linear(n_dim, n_class)
            self.w_share = nn.Linear(n_dim, n_class)

        def forward(self, x):  # eval: pp and w_vrm only
            return self.w_vrm(self.pp(x))

    class MLM(nn.Layer):
        """Training only: its layers exist (and are saved), eval never calls it."""

        def __init__(self, n_dim, n_position, max_text_length, n_head, d_inner):
            super().__init__()
            args = (n_position, n_dim, n_head, d_inner)
            self.MLM_SequenceModeling_mask = TransformerEncoder(2, *args)
            self.MLM_SequenceModeling_WCL = TransformerEncoder(1, *args)
            self.pos_embedding = nn.Embedding(max_text_length, n_dim)
            self.w0_linear = nn.Linear(1, n_position)
            self.wv = nn.Linear(n_dim, n_dim)
            self.we = nn.Linear(n_dim, 1)

    class MLMVRM(nn.Layer):
        def __init__(self, n_layers, n_position, n_dim, max_text_length, nclass, n_head, d_inner):
            super().__init__()
            self.MLM = MLM(n_dim, n_position, max_text_length, n_head, d_inner)
            self.SequenceModeling = TransformerEncoder(n_layers, n_position, n_dim, n_head, d_inner)
            self.Prediction = Prediction(n_dim, n_position, max_text_length + 1, nclass)

        def forward(self, x):
            b, c, h, w = x.shape
            x = x.transpose([0, 1, 3, 2]).reshape([b, c, h * w]).transpose([0, 2, 1])
            text_pre = self.Prediction(self.SequenceModeling(x))
            return text_pre.transpose([1, 0, 2]), x  # (max_text_length + 1, b, classes)

    class VLHead(nn.Layer):
        def __init__(self, out_channels=36, n_layers=3, n_position=256, n_dim=512,
                     max_text_length=25, n_head=8, d_inner=2048):  # fmt: skip
            super().__init__()
            self.MLM_VRM = MLMVRM(
                n_layers, n_position, n_dim, max_text_length, out_channels + 1, n_head, d_inner
            )

        def forward(self, feat):
            return self.MLM_VRM(feat)

    class VLModel(nn.Layer):
        """``BaseModel`` with ``backbone`` and ``head``, eval: the head's ``text_pre``
        (time first; the second output, the reordered features, left out)."""

        def __init__(self, backbone, head):
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, x):
            return self.head(self.backbone(x))[0]

    return VLHead, VLModel


def vl_head(**kw):
    """PaddleOCR's ``VLHead`` (``out_channels``, ``n_layers``, ``n_position``, ``n_dim``,
    ``max_text_length``; ``n_head``, ``d_inner`` 8 and 2048 as PaddleOCR's)."""
    return _classes()[0](**kw)


def vl_model(strides=(2, 2, 2, 1, 1), **head):
    """rec_r45_visionlan.yml's model: ResNet45 (``strides``) and ``VLHead(**head)``."""
    import reference_models

    return _classes()[1](reference_models.paddle_resnet45(strides=strides), vl_head(**head))


# ---- ABINet (heads/rec_abinet_head.py; rec_nrtr_head.py's TransformerBlock, MultiheadAttention)
@functools.cache
def _abinet_classes():  # noqa: C901 - one namespace of retyped classes, built once
    """ABINet, retyped from PaddleOCR's module names, shapes and eval forward: the vision
    model, and with ``use_lang`` the language model (``BCNLanguage``) and alignment run
    ``iter_size`` times, each masked by the lengths of the last logits (``_get_length``,
    ``_get_mask``). The sinusoid table is computed as PaddleOCR does it, in float32 Paddle
    ops (saved as buffer ``pe``)."""
    import math

    import paddle
    from paddle import nn
    from paddle.nn import functional as F

    class PositionalEncoding(nn.Layer):
        def __init__(self, dim, max_len):
            super().__init__()
            position = paddle.arange(0, max_len, dtype="float32").unsqueeze(1)
            rate = paddle.exp(paddle.arange(0, dim, 2).astype("float32") * (-math.log(1e4) / dim))
            table = paddle.zeros([max_len, dim])
            table[:, 0::2] = paddle.sin(position * rate)
            table[:, 1::2] = paddle.cos(position * rate)
            self.register_buffer("pe", table.unsqueeze(0).transpose([1, 0, 2]))  # (L, 1, dim)

        def forward(self, x):  # x (B, L, dim)
            return (x.transpose([1, 0, 2]) + self.pe[: x.shape[1]]).transpose([1, 0, 2])

    class SelfAttention(nn.Layer):  # rec_nrtr_head's MultiheadAttention(self_attn=True)
        def __init__(self, dim, heads):
            super().__init__()
            self.heads, self.head_dim = heads, dim // heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out_proj = nn.Linear(dim, dim)

        def forward(self, x):
            n = x.shape[1]
            qkv = self.qkv(x).reshape([0, n, 3, self.heads, self.head_dim])
            q, k, v = qkv.transpose([2, 0, 3, 1, 4])
            attn = F.softmax(q.matmul(k.transpose([0, 1, 3, 2])) * self.head_dim**-0.5, axis=-1)
            return self.out_proj(attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, n, -1]))

    class Mlp(nn.Layer):  # rec_svtrnet's Mlp with ReLU
        def __init__(self, dim, hidden):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class CrossAttention(nn.Layer):  # rec_nrtr_head's MultiheadAttention(self_attn=False)
        def __init__(self, dim, heads):
            super().__init__()
            self.heads, self.head_dim = heads, dim // heads
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
            self.out_proj = nn.Linear(dim, dim)

        def forward(self, query, key, attn_mask=None):
            n, m = query.shape[1], key.shape[1]
            q = self.q(query).reshape([0, n, self.heads, self.head_dim]).transpose([0, 2, 1, 3])
            kv = self.kv(key).reshape([0, m, 2, self.heads, self.head_dim])
            k, v = kv.transpose([2, 0, 3, 1, 4])
            scores = q.matmul(k.transpose([0, 1, 3, 2])) * self.head_dim**-0.5
            if attn_mask is not None:
                scores += attn_mask
            attn = F.softmax(scores, axis=-1)
            return self.out_proj(attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, n, -1]))

    class TransformerBlock(nn.Layer):
        """The encoder's block (self-attention, norm1) or the language decoder's (cross-
        attention on ``memory`` with ``cross_mask``, norm2); then mlp and norm3."""

        def __init__(self, d_model, nhead, dim_feedforward, self_attn=True, cross_attn=False):
            super().__init__()
            self.with_self_attn, self.with_cross_attn = self_attn, cross_attn
            if self_attn:
                self.self_attn = SelfAttention(d_model, nhead)
                self.norm1 = nn.LayerNorm(d_model)
            if cross_attn:
                self.cross_attn = CrossAttention(d_model, nhead)
                self.norm2 = nn.LayerNorm(d_model)
            self.mlp = Mlp(d_model, dim_feedforward)
            self.norm3 = nn.LayerNorm(d_model)

        def forward(self, x, memory=None, cross_mask=None):
            if self.with_self_attn:
                x = self.norm1(x + self.self_attn(x))
            if self.with_cross_attn:
                x = self.norm2(x + self.cross_attn(x, memory, cross_mask))
            return self.norm3(x + self.mlp(x))

    class BCNLanguage(nn.Layer):
        """The language model: softmaxed tokens through ``proj`` (no bias) plus the sinusoid
        table are the memory; the table alone the queries; 4 cross-attention blocks masked
        by the lengths; ``cls``. Returns (feature, logits)."""

        def __init__(self, d_model, nhead, dim_feedforward, max_length, num_classes):
            super().__init__()
            self.max_length = max_length + 1
            self.proj = nn.Linear(num_classes, d_model, bias_attr=False)
            self.token_encoder = PositionalEncoding(d_model, self.max_length)
            self.pos_encoder = PositionalEncoding(d_model, self.max_length)
            self.decoder = nn.LayerList(
                [TransformerBlock(d_model, nhead, dim_feedforward, False, True) for _ in range(4)]
            )
            self.cls = nn.Linear(d_model, num_classes)

        def forward(self, tokens, lengths):
            embed = self.token_encoder(self.proj(tokens))
            mask = length_mask(lengths, self.max_length)
            query = self.pos_encoder(paddle.zeros_like(embed))
            for block in self.decoder:
                query = block(query, embed, cross_mask=mask)
            return query, self.cls(query)

    def first_end_length(logits):
        """_get_length: 1 + the position of the first argmax 0 (the stop class), else N."""
        is_end = logits.argmax(-1) == 0
        seen = is_end.any(-1)
        first = ((is_end.astype("int32").cumsum(-1) == 1) & is_end).astype("int32").argmax(-1)
        return paddle.where(seen, first + 1, paddle.full_like(first, logits.shape[1]))

    def length_mask(lengths, size):
        """_get_mask: (B, 1, size, size), -inf at keys j >= length and on the diagonal."""
        steps = paddle.arange(0, size).unsqueeze(0).tile([lengths.shape[0], 1])
        past = paddle.where(
            steps >= lengths.unsqueeze(-1),
            paddle.full([lengths.shape[0], size], float("-inf")),
            paddle.zeros([lengths.shape[0], size]),
        )
        diagonal = paddle.diag(paddle.full([size], float("-inf")))
        return (past.unsqueeze(1) + diagonal).unsqueeze(1)

    def down(cin, cout, stride):
        return nn.Sequential(nn.Conv2D(cin, cout, 3, stride, 1), nn.BatchNorm2D(cout), nn.ReLU())

    def up(cin, cout, **size):
        return nn.Sequential(
            nn.Upsample(mode="nearest", **size),
            nn.Conv2D(cin, cout, 3, 1, 1),
            nn.BatchNorm2D(cout),
            nn.ReLU(),
        )

    class PositionAttention(nn.Layer):
        def __init__(self, max_length, h, w, in_channels=512, num_channels=64):
            super().__init__()
            self.max_length = max_length
            c = num_channels
            strides = [(1, 2), (2, 2), (2, 2), (2, 2)]
            self.k_encoder = nn.Sequential(
                *[down(in_channels if i == 0 else c, c, s) for i, s in enumerate(strides)]
            )
            self.k_decoder = nn.Sequential(
                *[up(c, c, scale_factor=2) for _ in range(3)], up(c, in_channels, size=(h, w))
            )
            self.pos_encoder = PositionalEncoding(in_channels, max_length)
            self.project = nn.Linear(in_channels, in_channels)

        def forward(self, x):
            b, c, h, w = x.shape
            levels, k = [], x
            for layer in self.k_encoder:
                k = layer(k)
                levels.append(k)
            for i in range(3):
                k = self.k_decoder[i](k) + levels[2 - i]
            k = self.k_decoder[3](k)
            q = self.project(self.pos_encoder(paddle.zeros([b, self.max_length, c], x.dtype)))
            scores = F.softmax(q.matmul(k.flatten(2)) / c**0.5, axis=-1)
            return scores.matmul(x.flatten(2).transpose([0, 2, 1]))

    class ABINetHead(nn.Layer):
        def __init__(self, out_channels, d_model=512, nhead=8, num_layers=3,
                     dim_feedforward=2048, max_length=25, image_size=(32, 128),
                     use_lang=False, iter_size=1):  # fmt: skip
            super().__init__()
            self.max_length = max_length + 1
            h, w = image_size[0] // 4, image_size[1] // 4
            self.pos_encoder = PositionalEncoding(d_model, h * w)
            self.encoder = nn.LayerList(
                [TransformerBlock(d_model, nhead, dim_feedforward) for _ in range(num_layers)]
            )
            self.decoder = PositionAttention(max_length + 1, h, w)
            self.cls = nn.Linear(d_model, out_channels)
            self.use_lang, self.iter_size = use_lang, iter_size
            if use_lang:
                self.language = BCNLanguage(
                    d_model, nhead, dim_feedforward, max_length, out_channels
                )
                self.w_att_align = nn.Linear(2 * d_model, d_model)
                self.cls_align = nn.Linear(d_model, out_channels)

        def forward(self, x):  # eval: class probabilities (B, max_length + 1, classes)
            b, c, h, w = x.shape
            feature = self.pos_encoder(x.transpose([0, 2, 3, 1]).flatten(1, 2))
            for block in self.encoder:
                feature = block(feature)
            feature = feature.reshape([0, h, w, c]).transpose([0, 3, 1, 2])
            v_feature = self.decoder(feature)
            logits = self.cls(v_feature)
            if self.use_lang:
                lengths = first_end_length(logits)
                for _ in range(self.iter_size):
                    tokens = F.softmax(logits, axis=-1)
                    lengths = paddle.clip(lengths, 2, self.max_length)
                    l_feature, _ = self.language(tokens, lengths)
                    fuse = paddle.concat((l_feature, v_feature), -1)
                    gate = F.sigmoid(self.w_att_align(fuse))
                    logits = self.cls_align(gate * v_feature + (1 - gate) * l_feature)
                    lengths = first_end_length(logits)
            return F.softmax(logits, axis=-1)

    class Model(nn.Layer):
        def __init__(self, backbone, head):
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, x):
            return self.head(self.backbone(x))

    return ABINetHead, Model, first_end_length, length_mask


def abinet_model(strides=(2, 1, 2, 1, 1), layers=(3, 4, 6, 6, 3), **head):
    """rec_r45_abinet.yml's model: ResNet45 (``strides``, ``layers``) and
    ``ABINetHead(**head)`` (``use_lang=True``: the language model and alignment too)."""
    import reference_models

    head_class, model = _abinet_classes()[:2]
    backbone = reference_models.paddle_resnet45(strides=strides, layers=layers)
    return model(backbone, head_class(**head))
