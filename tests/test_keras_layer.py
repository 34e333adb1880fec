"""Keras's own layer checks (`keras.src.testing.TestCase.run_layer_test`) on KANDense.

`run_layer_test` checks the config round trip and serialization, weight
counts, masking support, symbolic and eager calls, a compiled training step
and (except on PyTorch without CUDA, which Keras skips) mixed precision.
"""

import pytest
from absl.testing import parameterized
from keras.src import testing

from keras_kan import KANDense, KANRegularizer

BASE = {"units": 2, "grid_size": 3, "seed": 0}
# grid and edge_mask, plus the symbolic-edge weights, which stay non-trainable
# while no edge is symbolic (symbolic_mask, symbolic_a..d).
NON_TRAINABLE = 2 + 5


@pytest.mark.slow  # Keras's layer-test harness compiles and fits every case
class KANDenseKerasTest(testing.TestCase):
    @parameterized.named_parameters(
        ("rank2", (4, 3)),
        ("rank3", (2, 5, 3)),
        ("rank4", (2, 3, 4, 3)),
    )
    def test_input_ranks(self, input_shape):
        self.run_layer_test(
            KANDense,
            init_kwargs=dict(BASE),
            input_shape=input_shape,
            expected_output_shape=input_shape[:-1] + (2,),
            expected_num_trainable_weights=3,  # spline_kernel, base_kernel, spline_scale
            expected_num_non_trainable_weights=NON_TRAINABLE,
            expected_num_seed_generators=0,
            expected_num_losses=0,
            supports_masking=True,
        )

    @parameterized.named_parameters(("rank2", (4, 3)), ("rank3", (2, 5, 3)))
    def test_use_bias(self, input_shape):
        self.run_layer_test(
            KANDense,
            init_kwargs=dict(BASE, use_bias=True, bias_initializer="ones"),
            input_shape=input_shape,
            expected_output_shape=input_shape[:-1] + (2,),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=NON_TRAINABLE,
            supports_masking=True,
        )

    @parameterized.named_parameters(*[(f"order{k}", k) for k in range(6)])
    def test_spline_orders(self, spline_order):
        self.run_layer_test(
            KANDense,
            init_kwargs=dict(BASE, spline_order=spline_order),
            input_shape=(4, 3),
            expected_output_shape=(4, 2),
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=NON_TRAINABLE,
            supports_masking=True,
        )

    @parameterized.named_parameters(("rank2", (4, 3)), ("rank3", (2, 5, 3)))
    def test_regularizer_adds_one_loss(self, input_shape):
        self.run_layer_test(
            KANDense,
            init_kwargs=dict(BASE, regularizer=KANRegularizer(l1=0.01, entropy=0.1, coef=0.01)),
            input_shape=input_shape,
            call_kwargs={"training": True},  # the penalty is added on training calls
            expected_output_shape=input_shape[:-1] + (2,),
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=NON_TRAINABLE,
            expected_num_losses=1,
            supports_masking=True,
        )
