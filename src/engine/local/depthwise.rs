//! Depthwise convolutions (one filter per channel) run by an op of ours instead of tract's.
//!
//! tract walks a depthwise convolution zone by zone, by how many taps fall inside the picture. On
//! x86-64 its only vectorised kernel runs 8 lanes along a row of a channel-first picture, and
//! scalar when the layer steps two columns; MobileFaceNet's channel-last layers run a loop
//! compiled for the baseline CPU; the zone walk itself was a fifth of the depthwise time
//! (profiles of `facereko eval`). [`Depthwise`] sums the same taps in the same order (the bias,
//! then one product and one sum per tap, row by row), so the outputs are the same bit for bit
//! (tested below), in straight loops that the compiler vectorises for the widest registers the
//! CPU has.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Outputs summed side by side: a whole AVX-512 register, two AVX ones, four NEON ones.
const LANES: usize = 16;
/// Four times [`LANES`], for four sums in flight at once: each tap's sum waits for the one before.
const WIDE: usize = 4 * LANES;

/// A depthwise convolution of a batch of one, f32, with the filters and biases it was planned with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Depthwise {
    /// Where the channels are: first (NCHW, CHW) or last (NHWC, HWC).
    format: DataFormat,
    /// Filter rows and columns.
    kernel: (usize, usize),
    /// Between output rows and between output columns, in input pixels.
    stride: (usize, usize),
    /// Zeros above and to the left of the picture (those below and to the right follow from the
    /// output's size).
    pad: (usize, usize),
    /// Output rows and columns.
    output: (usize, usize),
    /// `[tap][channel]`, taps row by row.
    weights: Arc<Tensor>,
    /// One per channel.
    bias: Arc<Tensor>,
}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "Depthwise".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = self.format.shape(input.shape())?;
        ensure!(shape.n().is_none_or(|&n| n == 1), "Depthwise takes one picture, not {:?}", input.shape());
        let (channels, &[rows, columns]) = (*shape.c(), shape.hw_dims()) else {
            bail!("Depthwise takes two-dimensional pictures, not {:?}", input.shape());
        };
        let mut output_shape = input.shape().to_vec();
        let rows_axis = self.format.h_axis();
        (output_shape[rows_axis], output_shape[rows_axis + 1]) = self.output;
        // SAFETY: an f32 may hold any bits, and every output is written below before it is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&output_shape)? };
        let weights = self.weights.try_as_plain_ram()?;
        let bias = self.bias.try_as_plain_ram()?;
        let input = input.try_as_plain_ram()?;
        let mut target = output.try_as_plain_ram_mut()?;
        let job = Job {
            layer: self,
            channels,
            picture: (rows, columns),
            weights: weights.as_slice::<f32>()?,
            bias: bias.as_slice::<f32>()?,
            input: input.as_slice::<f32>()?,
        };
        job.run(target.as_slice_mut::<f32>()?);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        let rows_axis = self.format.h_axis();
        ensure!(shape.len() == rows_axis + 2 + usize::from(self.format.c_is_last()), "Depthwise takes 2-D pictures");
        shape[rows_axis] = self.output.0.into();
        shape[rows_axis + 1] = self.output.1.into();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// One evaluation's slices.
struct Job<'a> {
    layer: &'a Depthwise,
    channels: usize,
    /// Input rows and columns.
    picture: (usize, usize),
    weights: &'a [f32],
    bias: &'a [f32],
    input: &'a [f32],
}

impl Job<'_> {
    fn run(&self, output: &mut [f32]) {
        if output.is_empty() || self.input.is_empty() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has just been seen to have the feature.
                return unsafe { self.run_avx512(output) };
            }
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: as above.
                return unsafe { self.run_avx(output) };
            }
        }
        self.run_here(output)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn run_avx512(&self, output: &mut [f32]) {
        self.run_here(output)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn run_avx(&self, output: &mut [f32]) {
        self.run_here(output)
    }

    /// The work, inlined into each of the functions above so that it is compiled for their CPU
    /// (a closure passed to them is not inlined, measured: the loops then ran as 4-lane SSE).
    #[inline(always)]
    fn run_here(&self, output: &mut [f32]) {
        if self.layer.format.c_is_last() { self.channels_last(output) } else { self.channels_first(output) }
    }

    /// NHWC: each output pixel is its channels, in blocks of lanes, over the taps inside the
    /// picture.
    #[inline(always)]
    fn channels_last(&self, output: &mut [f32]) {
        let channels = self.channels;
        for (out_row, output_row) in output.chunks_exact_mut(self.layer.output.1 * channels).enumerate() {
            for (out_column, pixel) in output_row.chunks_exact_mut(channels).enumerate() {
                let start = self.pixel_block::<WIDE>(pixel, (out_row, out_column), 0);
                let start = self.pixel_block::<LANES>(pixel, (out_row, out_column), start);
                let start = self.pixel_block::<8>(pixel, (out_row, out_column), start);
                self.pixel_block::<1>(pixel, (out_row, out_column), start);
            }
        }
    }

    /// The channels of one NHWC output pixel from `start` on, `N` at a time while `N` remain;
    /// returns where it stopped.
    #[inline(always)]
    fn pixel_block<const N: usize>(
        &self,
        pixel: &mut [f32],
        (out_row, out_column): (usize, usize),
        mut start: usize,
    ) -> usize {
        let Depthwise { kernel: (kernel_rows, kernel_columns), stride, pad, .. } = *self.layer;
        let (rows, columns) = self.picture;
        let channels = self.channels;
        // The taps whose input index, first + tap − pad, falls inside 0..size, with that index.
        let taps_at = |out: usize, stride: usize, pad: usize, kernel: usize, size: usize| {
            let first = out * stride;
            (pad.saturating_sub(first)..kernel.min((size + pad).saturating_sub(first)))
                .map(move |tap| (tap, first + tap - pad))
        };
        while start + N <= channels {
            let mut sum: [f32; N] = block(&self.bias[start..]);
            for (tap_row, row) in taps_at(out_row, stride.0, pad.0, kernel_rows, rows) {
                for (tap_column, column) in taps_at(out_column, stride.1, pad.1, kernel_columns, columns) {
                    let tap = tap_row * kernel_columns + tap_column;
                    let weights: [f32; N] = block(&self.weights[tap * channels + start..]);
                    let values: [f32; N] = block(&self.input[(row * columns + column) * channels + start..]);
                    for lane in 0..N {
                        sum[lane] += weights[lane] * values[lane];
                    }
                }
            }
            pixel[start..start + N].copy_from_slice(&sum);
            start += N;
        }
        start
    }

    /// NCHW: each channel's picture is copied once onto zeros, split into one plane per column
    /// phase of the stride (for a stride of 2, the even columns and the odd ones), so that the
    /// inputs of neighbouring outputs lie side by side for every tap.
    #[inline(always)]
    fn channels_first(&self, output: &mut [f32]) {
        let Depthwise { kernel: (kernel_rows, kernel_columns), stride, pad, output: (out_rows, out_columns), .. } =
            *self.layer;
        let (rows, columns) = self.picture;
        let padded_rows = (out_rows - 1) * stride.0 + kernel_rows;
        let phase_columns = out_columns + (kernel_columns - 1) / stride.1;
        // The padded picture, one plane per column phase, each `phase_size` values.
        let phase_size = padded_rows * phase_columns;
        let mut phases = vec![0f32; stride.1 * phase_size];
        // One padded row of the picture, before it is split into phases.
        let mut line = vec![0f32; stride.1 * phase_columns];
        let shown = columns.min(line.len().saturating_sub(pad.1));
        let taps = kernel_rows * kernel_columns;
        // Where each tap's input is, from an output's place in the phase planes.
        let tap_offsets: Vec<usize> = (0..taps)
            .map(|tap| {
                let (tap_row, tap_column) = (tap / kernel_columns, tap % kernel_columns);
                (tap_column % stride.1) * phase_size + tap_row * phase_columns + tap_column / stride.1
            })
            .collect();
        for (channel, (plane, output)) in
            self.input.chunks_exact(rows * columns).zip(output.chunks_exact_mut(out_rows * out_columns)).enumerate()
        {
            for (row, values) in plane.chunks_exact(columns).enumerate().take(padded_rows.saturating_sub(pad.0)) {
                let at = (row + pad.0) * phase_columns;
                if stride.1 == 1 {
                    // One plane: the row goes straight to its place between the zeros.
                    phases[at + pad.1..at + pad.1 + shown].copy_from_slice(&values[..shown]);
                    continue;
                }
                line[pad.1..pad.1 + shown].copy_from_slice(&values[..shown]);
                match stride.1 {
                    // In pairs, which the compiler vectorises, unlike a step through the line.
                    2 => {
                        let (even, odd) = phases.split_at_mut(phase_size);
                        let targets = even[at..at + phase_columns].iter_mut().zip(&mut odd[at..at + phase_columns]);
                        for ((even, odd), pair) in targets.zip(line.chunks_exact(2)) {
                            (*even, *odd) = (pair[0], pair[1]);
                        }
                    }
                    step => {
                        for (column, &value) in line.iter().enumerate() {
                            phases[(column % step) * phase_size + at + column / step] = value;
                        }
                    }
                }
            }
            let weights = &self.weights[channel * taps..][..taps];
            let bias = self.bias[channel];
            for (out_row, output_row) in output.chunks_exact_mut(out_columns).enumerate() {
                let row = Row { weights, tap_offsets: &tap_offsets, bias, from: out_row * stride.0 * phase_columns };
                let start = row.block::<WIDE>(output_row, &phases, 0);
                let start = row.block::<LANES>(output_row, &phases, start);
                let start = row.block::<8>(output_row, &phases, start);
                row.block::<1>(output_row, &phases, start);
            }
        }
    }
}

/// One output row of one channel, NCHW.
struct Row<'a> {
    weights: &'a [f32],
    tap_offsets: &'a [usize],
    bias: f32,
    /// Where the row's first input is in the phase planes.
    from: usize,
}

impl Row<'_> {
    /// The outputs from `start` on, `N` at a time while `N` remain; returns where it stopped.
    #[inline(always)]
    fn block<const N: usize>(&self, output_row: &mut [f32], phases: &[f32], mut start: usize) -> usize {
        while start + N <= output_row.len() {
            let mut sum = [self.bias; N];
            for (&weight, &offset) in self.weights.iter().zip(self.tap_offsets) {
                let values: [f32; N] = block(&phases[self.from + offset + start..]);
                for lane in 0..N {
                    sum[lane] += weight * values[lane];
                }
            }
            output_row[start..start + N].copy_from_slice(&sum);
            start += N;
        }
        start
    }
}

/// The first `N` values of `values`, as an array the compiler keeps in registers.
#[inline(always)]
fn block<const N: usize>(values: &[f32]) -> [f32; N] {
    values[..N].try_into().expect("a slice of N values")
}

/// What tract's `into_optimized` makes of a decluttered `model`, with its depthwise convolutions
/// run by [`Depthwise`]: code generation only, since another decluttering would not know our op.
pub(super) fn into_optimized(mut model: TypedModel) -> TractResult<TypedModel> {
    replace_depthwise(&mut model)?;
    model.optimize()?;
    Ok(model)
}

/// Puts a [`Depthwise`] in place of every f32 depthwise convolution of a decluttered `model`
/// whose filters and biases are constants (and without dilation).
fn replace_depthwise(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else { continue };
        let Some(layer) = ours(model, node, conv)? else { continue };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let output = patch.wire_node(format!("{}.ours", node.name), layer, &[input])?[0];
        if patch.outlet_fact(output)?.shape != node.outputs[0].fact.shape {
            continue;
        }
        patch.shunt_outside(model, node.id.into(), output)?;
        patch.apply(model)?;
    }
    Ok(())
}

/// The [`Depthwise`] that computes `conv`, if it is one this op covers.
fn ours(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<Depthwise>> {
    let spec = &conv.pool_spec;
    let depthwise = conv.group > 1 && conv.group == spec.input_channels && conv.group == spec.output_channels;
    let fact = model.outlet_fact(node.inputs[0])?;
    let (Some(input_shape), [_, kernel, bias]) = (fact.shape.as_concrete(), node.inputs.as_slice()) else {
        return Ok(None);
    };
    let (Some(kernel), Some(bias)) =
        (model.outlet_fact(*kernel)?.konst.clone(), model.outlet_fact(*bias)?.konst.clone())
    else {
        return Ok(None);
    };
    if !depthwise
        || conv.q_params.is_some()
        || fact.datum_type != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || (spec.data_format.has_n() && input_shape[0] != 1)
    {
        return Ok(None);
    }
    let channels = conv.group;
    let shape = spec.data_format.shape(input_shape.to_vec())?;
    let padding = spec.computed_padding(shape.hw_dims());
    let strides = spec.strides();
    // `[channel][1][tap]`, then tap-major for the channel-last loop, which reads a tap's weights
    // for neighbouring channels together.
    let per_channel = values(&conv.kernel_fmt.kernel_as_group_o_ihw(&kernel, channels)?)?;
    let taps = spec.kernel_shape[0] * spec.kernel_shape[1];
    let channels_last = spec.data_format.c_is_last();
    let weights: Vec<f32> = if channels_last {
        let per_channel = &per_channel;
        (0..taps).flat_map(|tap| (0..channels).map(move |channel| per_channel[channel * taps + tap])).collect()
    } else {
        per_channel
    };
    let bias = match values(&bias)?.as_slice() {
        &[one] => vec![one; channels],
        each if each.len() == channels => each.to_vec(),
        _ => return Ok(None),
    };
    Ok(Some(Depthwise {
        format: spec.data_format,
        kernel: (spec.kernel_shape[0], spec.kernel_shape[1]),
        stride: (strides[0], strides[1]),
        pad: (padding[0].pad_before, padding[1].pad_before),
        output: (padding[0].convoluted, padding[1].convoluted),
        weights: Arc::new(Tensor::from_shape(&[weights.len()], &weights)?),
        bias: Arc::new(tensor1(&bias)),
    }))
}

/// A constant's values.
fn values(tensor: &Tensor) -> TractResult<Vec<f32>> {
    Ok(tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};

    /// A depthwise convolution over `channels` channels of a picture `height`×`width`, with a
    /// `kernel`×`kernel` filter, `padding` and `stride` on both axes.
    fn depthwise(
        format: DataFormat,
        channels: usize,
        (height, width): (usize, usize),
        kernel: usize,
        padding: PaddingSpec,
        stride: usize,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape_of(format, channels, (height, width)))).unwrap();
        let taps: Vec<f32> = (0..channels * kernel * kernel).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.173).collect();
        let filters = Tensor::from_shape(&[channels, 1, kernel, kernel], &taps).unwrap();
        let filters = model.add_const("kernel", filters).unwrap();
        let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.25 - 0.5).collect();
        let bias = model.add_const("bias", tensor1(&bias)).unwrap();
        let pool_spec = PoolSpec {
            data_format: format,
            kernel_shape: tvec!(kernel, kernel),
            padding,
            dilations: None,
            strides: Some(tvec!(stride, stride)),
            input_channels: channels,
            output_channels: channels,
        };
        let conv = Conv { pool_spec, kernel_fmt: KernelFormat::OIHW, group: channels, q_params: None };
        let y = model.wire_node("conv", conv, &[x, filters, bias]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        model
    }

    fn shape_of(format: DataFormat, channels: usize, (height, width): (usize, usize)) -> Vec<usize> {
        format.from_n_c_hw(1, channels, [height, width]).unwrap().shape.to_vec()
    }

    #[test]
    fn our_depthwise_convolutions_give_tracts_bits() {
        let cases = [
            (PaddingSpec::SameUpper, 1, 3),
            (PaddingSpec::SameUpper, 2, 3),
            (PaddingSpec::Valid, 1, 3),
            (PaddingSpec::Valid, 2, 3),
            (PaddingSpec::SameUpper, 1, 5),
            (PaddingSpec::SameUpper, 3, 3),
            (PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)), 2, 3),
        ];
        for format in [DataFormat::NCHW, DataFormat::NHWC, DataFormat::CHW, DataFormat::HWC] {
            for (padding, stride, kernel) in cases.clone() {
                // Channel counts below, at and over the lanes summed side by side, widths too.
                for (channels, size) in [(3, (16, 16)), (16, (13, 22)), (37, (9, 40))] {
                    let what = format!(
                        "{format:?}, {padding:?}, stride {stride}, {kernel}×{kernel}, {channels} channels, {size:?}"
                    );
                    let shape = shape_of(format, channels, size);
                    let values: Vec<f32> =
                        (0..channels * size.0 * size.1).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.071).collect();
                    let input = Tensor::from_shape(&shape, &values).unwrap().into_tvalue();
                    let model = || depthwise(format, channels, size, kernel, padding.clone(), stride);
                    let expected = model().into_optimized().unwrap().into_runnable().unwrap().run(tvec!(input.clone()));
                    let expected = expected.unwrap();

                    let mut ours = model().into_decluttered().unwrap();
                    replace_depthwise(&mut ours).unwrap();
                    ours.optimize().unwrap();
                    let ops: Vec<String> = ours.nodes.iter().map(|node| node.op.name().to_string()).collect();
                    assert!(ops.iter().any(|op| op == "Depthwise"), "{what}: {ops:?}");
                    let got = ours.into_runnable().unwrap().run(tvec!(input)).unwrap();
                    let bits = |value: &TValue| -> Vec<u32> {
                        value.to_plain_array_view::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
                    };
                    assert_eq!(got[0].shape(), expected[0].shape(), "{what}");
                    assert_eq!(bits(&got[0]), bits(&expected[0]), "{what}");
                }
            }
        }
    }
}
