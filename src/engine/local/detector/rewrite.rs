//! CenterFace's graph rewritten so that tract's depthwise kernels run vectorised: the same taps
//! summed in the same order, so the outputs are the same bit for bit (tested below).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Both rewrites, on a decluttered model; code generation must follow without another decluttering,
/// which would fold them back into the convolutions.
pub(super) fn for_tract_kernels(model: &mut TypedModel) -> TractResult<()> {
    pad_before_depthwise(model)?;
    step_across_rows_only(model)
}

/// Whether `conv` is depthwise (one filter per channel) and not quantised.
fn is_depthwise(conv: &Conv) -> bool {
    let spec = &conv.pool_spec;
    conv.group > 1 && conv.group == spec.input_channels && conv.group == spec.output_channels && conv.q_params.is_none()
}

/// Copies an NCHW f32 tensor into the middle of a larger one of zeros: one copy per row, where
/// tract's own `Pad` walks every value through ndarray (9 % of `eval`'s time in a profile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ZeroPad {
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
}

impl Op for ZeroPad {
    fn name(&self) -> StaticName {
        "ZeroPad".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ZeroPad {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[batch, channels, height, width] = input.shape() else {
            bail!("ZeroPad takes NCHW tensors, not {:?}", input.shape());
        };
        let (padded_height, padded_width) = (height + self.top + self.bottom, width + self.left + self.right);
        let mut output = Tensor::zero::<f32>(&[batch, channels, padded_height, padded_width])?;
        let source = input.try_as_plain_ram()?;
        let planes = source.as_slice::<f32>()?.chunks_exact(height * width);
        let mut target = output.try_as_plain_ram_mut()?;
        for (plane, padded) in planes.zip(target.as_slice_mut::<f32>()?.chunks_exact_mut(padded_height * padded_width))
        {
            for (row, padded_row) in plane.chunks_exact(width).zip(padded.chunks_exact_mut(padded_width).skip(self.top))
            {
                padded_row[self.left..self.left + width].copy_from_slice(row);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ZeroPad {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        ensure!(shape.len() == 4, "ZeroPad takes NCHW tensors");
        shape[2] = shape[2].clone() + (self.top + self.bottom) as i64;
        shape[3] = shape[3].clone() + (self.left + self.right) as i64;
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}

/// Gives every padded depthwise convolution an input already padded with zeros, and no padding of
/// its own. tract splits a padded convolution's output into zones by which taps fall inside the
/// input, and its vectorised kernel runs a zone's rows 8 outputs at a time with the rest scalar: on
/// a 3×3 layer 64 wide, the middle zone's rows are 62 long, so 6 of every 62 outputs (and the
/// one-column edge zones) ran scalar, nearly as long as the other 56. Unpadded, a row is the
/// whole width. The zeros add nothing to a sum, so the outputs are the same bit for bit.
fn pad_before_depthwise(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>().filter(|conv| is_depthwise(conv)) else { continue };
        let spec = &conv.pool_spec;
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(input_shape) = fact.shape.as_concrete() else { continue };
        if spec.data_format != DataFormat::NCHW || fact.datum_type != f32::datum_type() {
            continue;
        }
        let shape = spec.data_format.shape(input_shape.to_vec())?;
        let padding = spec.computed_padding(shape.hw_dims());
        let [rows, columns] = padding.as_slice() else { continue };
        let pad = ZeroPad {
            top: rows.pad_before,
            bottom: rows.pad_after,
            left: columns.pad_before,
            right: columns.pad_after,
        };
        if pad == ZeroPad::default() {
            continue;
        }
        let mut unpadded = conv.clone();
        unpadded.pool_spec.padding = PaddingSpec::Valid;

        let mut patch = TypedModelPatch::default();
        let mut inputs = patch.taps(model, &node.inputs)?;
        inputs[0] = patch.wire_node(format!("{}.pad", node.name), pad, &[inputs[0]])?[0];
        let output = patch.wire_node(format!("{}.unpadded", node.name), unpadded, &inputs)?[0];
        if patch.outlet_fact(output)?.shape != node.outputs[0].fact.shape {
            continue;
        }
        patch.shunt_outside(model, node.id.into(), output)?;
        patch.apply(model)?;
    }
    Ok(())
}

/// Rewrites every depthwise convolution that steps over columns (stride 2 or more along a row) into
/// one that steps only between rows, followed by keeping every n-th column. tract's depthwise kernels
/// (tract-linalg 0.23) vectorise a 3×3 kernel only over consecutive input columns: CenterFace's
/// four stride-2 depthwise layers ran scalar and took a quarter of the detection time, more than
/// the columns now computed and dropped cost. Each kept output is the same taps summed in the same
/// order, so on x86-64 the detections are bit for bit the same.
fn step_across_rows_only(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>().filter(|conv| is_depthwise(conv)) else { continue };
        let spec = &conv.pool_spec;
        let mut strides: TVec<usize> = spec.strides().iter().copied().collect();
        let Some(column_step) = strides.last_mut() else { continue };
        if *column_step == 1 {
            continue;
        }
        let column_step = std::mem::replace(column_step, 1);
        let Some(input_shape) = model.outlet_fact(node.inputs[0])?.shape.as_concrete() else { continue };
        let shape = spec.data_format.shape(input_shape.to_vec())?;
        // The padding the original step implies, kept as it is: every window stays where it was.
        let padding = spec.computed_padding(shape.hw_dims());
        let mut rows_only = conv.clone();
        rows_only.pool_spec.padding = PaddingSpec::Explicit(
            padding.iter().map(|dim| dim.pad_before).collect(),
            padding.iter().map(|dim| dim.pad_after).collect(),
        );
        rows_only.pool_spec.strides = Some(strides);
        let column_axis = shape.hw_axes().end - 1;

        let mut patch = TypedModelPatch::default();
        let inputs = patch.taps(model, &node.inputs)?;
        let wide = patch.wire_node(format!("{}.rows", node.name), rows_only, &inputs)?[0];
        let narrowed = patch.wire_node(
            format!("{}.columns", node.name),
            Downsample::new(column_axis, column_step as isize, 0),
            &[wide],
        )?[0];
        if patch.outlet_fact(narrowed)?.shape != node.outputs[0].fact.shape {
            continue;
        }
        patch.shunt_outside(model, node.id.into(), narrowed)?;
        patch.apply(model)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PoolSpec};

    /// A 3×3 depthwise convolution over 2 channels of an NCHW picture `height`×`width`, with
    /// `padding` and `stride` on both axes.
    fn depthwise(height: usize, width: usize, padding: PaddingSpec, stride: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 2, height, width])).unwrap();
        let taps: Vec<f32> = (0..18).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.173).collect();
        let kernel = model.add_const("kernel", Tensor::from_shape(&[2, 1, 3, 3], &taps).unwrap()).unwrap();
        let bias = model.add_const("bias", tensor1(&[0.25f32, -0.5])).unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(3, 3),
            padding,
            dilations: None,
            strides: Some(tvec!(stride, stride)),
            input_channels: 2,
            output_channels: 2,
        };
        let conv = Conv { pool_spec, kernel_fmt: KernelFormat::OIHW, group: 2, q_params: None };
        let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        model
    }

    #[test]
    fn the_rewritten_depthwise_convolutions_give_the_same_bits() {
        for (padding, stride) in [(PaddingSpec::SameUpper, 1), (PaddingSpec::SameUpper, 2), (PaddingSpec::Valid, 2)] {
            for (height, width) in [(16, 16), (13, 22)] {
                let what = format!("{padding:?}, stride {stride}, {height}×{width}");
                let input: Vec<f32> = (0..2 * height * width).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.071).collect();
                let input = Tensor::from_shape(&[1, 2, height, width], &input).unwrap().into_tvalue();
                let plain = depthwise(height, width, padding.clone(), stride).into_optimized().unwrap();
                let expected = plain.into_runnable().unwrap().run(tvec!(input.clone())).unwrap();

                let mut model = depthwise(height, width, padding.clone(), stride).into_decluttered().unwrap();
                for_tract_kernels(&mut model).unwrap();
                model.optimize().unwrap();
                let ops: Vec<String> = model.nodes.iter().map(|node| node.op.name().to_string()).collect();
                assert_eq!(ops.iter().any(|op| op == "ZeroPad"), padding != PaddingSpec::Valid, "{what}: {ops:?}");
                let got = model.into_runnable().unwrap().run(tvec!(input)).unwrap();
                let bits = |value: &TValue| -> Vec<u32> {
                    value.to_plain_array_view::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
                };
                assert_eq!(got[0].shape(), expected[0].shape(), "{what}");
                assert_eq!(bits(&got[0]), bits(&expected[0]), "{what}");
            }
        }
    }
}
