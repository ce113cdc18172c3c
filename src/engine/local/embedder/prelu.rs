//! A parametric ReLU with one slope per channel, computed in one pass.
//!
//! TFLite has no PReLU operator that every runtime supports, so the MobileFaceNet file spells each
//! one as `max(x, 0) + (x − |x|) · slope/2`: three passes over the activations for tract (`Abs`, then
//! `Sub`+`Mul`, then `Max`+`Add`), over a quarter of the network's time. [`fuse`] puts [`PRelu`] in
//! their place. For a negative `x` the spelled-out form gives `2x · slope/2`, and doubling is exact,
//! so both round the same product `x · slope`: the outputs are the same bit for bit.

use tract_tflite::internal::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_tflite::internal::tract_core::ops::element_wise::ElementWiseOp;
use tract_tflite::internal::tract_core::ops::math::{Abs, Add, Max, Mul, Sub};
use tract_tflite::internal::tract_core::{as_op, op_as_typed_op, op_out_of_plan};
use tract_tflite::internal::*;

/// `x` where `x ≥ 0`, `x · slope` elsewhere; the channels are the last axis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PRelu {
    slopes: Arc<Tensor>,
}

impl Op for PRelu {
    fn name(&self) -> StaticName {
        "PRelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for PRelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // The plan hands over the only reference to the activations: this works in place.
        let mut activations = args_1!(inputs).into_tensor();
        let slopes = self.slopes.try_as_plain_ram()?;
        let slopes = slopes.as_slice::<f32>()?;
        for pixel in activations.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?.chunks_exact_mut(slopes.len()) {
            for (value, slope) in pixel.iter_mut().zip(slopes) {
                // Both sides computed, then one chosen: a branch on the sign mispredicts so
                // often that it cost more than the three passes it replaces.
                let scaled = *value * slope;
                *value = if *value < 0.0 { scaled } else { *value };
            }
        }
        Ok(tvec!(activations.into_tvalue()))
    }
}

impl TypedOp for PRelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// The node behind `outlet` if it is the binary operator `O`.
fn binary<O: BinMiniOp>(model: &TypedModel, outlet: OutletId) -> Option<&TypedNode> {
    let node = model.node(outlet.node);
    node.op_as::<TypedBinOp>().filter(|op| op.0.is::<O>()).map(|_| node)
}

/// Replaces every spelled-out PReLU in a decluttered `model` with one [`PRelu`]; anything else is
/// left as it is.
pub fn fuse(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let Some(sum) = binary::<Add>(model, id.into()) else { continue };
        let (Some(positive), Some(negative)) =
            (binary::<Max>(model, sum.inputs[0]), binary::<Mul>(model, sum.inputs[1]))
        else {
            continue;
        };
        let x = positive.inputs[0];
        let floor = model.outlet_fact(positive.inputs[1])?.konst.clone();
        let Some(half_slopes) = model.outlet_fact(negative.inputs[1])?.konst.clone() else { continue };
        let Some(difference) = binary::<Sub>(model, negative.inputs[0]) else { continue };
        let magnitude = model.node(difference.inputs[1].node);
        let spelled_out = floor.is_some_and(|f| f.len() == 1 && f.cast_to_scalar::<f32>().is_ok_and(|f| f == 0.0))
            && difference.inputs[0] == x
            && magnitude.inputs.first() == Some(&x)
            && magnitude.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<Abs>());
        let fact = model.outlet_fact(x)?;
        let per_channel = fact.datum_type == f32::datum_type()
            && half_slopes.datum_type() == f32::datum_type()
            && fact.shape.last().and_then(|channels| channels.to_usize().ok()) == Some(half_slopes.len())
            && half_slopes.shape().iter().rev().skip(1).all(|&dim| dim == 1);
        if !spelled_out || !per_channel {
            continue;
        }
        let slopes: Vec<f32> =
            half_slopes.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|half| 2.0 * half).collect();
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, x)?;
        let fused =
            patch.wire_node(format!("{}.prelu", sum.name), PRelu { slopes: Arc::new(tensor1(&slopes)) }, &[input])?[0];
        patch.shunt_outside(model, id.into(), fused)?;
        patch.apply(model)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_tflite::internal::tract_core::ops::math;

    /// `max(x, 0) + (x − |x|) · half_slopes`, as the TFLite file spells it.
    fn spelled_out(half_slopes: &[f32]) -> TypedModel {
        let mut model = TypedModel::default();
        let channels = half_slopes.len();
        let x = model.add_source("x", f32::fact([1, 2, 2, channels])).unwrap();
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
        let half = model.add_const("half", Tensor::from_shape(&[1, 1, 1, channels], half_slopes).unwrap()).unwrap();
        let positive = model.wire_node("relu", math::max(), &[x, zero]).unwrap()[0];
        let magnitude = model.wire_node("abs", math::abs(), &[x]).unwrap()[0];
        let difference = model.wire_node("sub", math::sub(), &[x, magnitude]).unwrap()[0];
        let negative = model.wire_node("mul", math::mul(), &[difference, half]).unwrap()[0];
        let sum = model.wire_node("add", math::add(), &[positive, negative]).unwrap()[0];
        model.select_output_outlets(&[sum]).unwrap();
        model
    }

    #[test]
    fn the_fused_activation_gives_the_same_bits() {
        let half_slopes = [0.3f32, -1.7, 2.35];
        let input: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.731).collect();
        let input = Tensor::from_shape(&[1, 2, 2, 3], &input).unwrap().into_tvalue();
        let reference = spelled_out(&half_slopes).into_runnable().unwrap().run(tvec!(input.clone())).unwrap();

        let mut model = spelled_out(&half_slopes).into_decluttered().unwrap();
        fuse(&mut model).unwrap();
        let model = model.into_optimized().unwrap();
        let ops: Vec<_> = model.nodes.iter().map(|node| node.op.name().to_string()).collect();
        assert!(ops.contains(&"PRelu".to_owned()) && !ops.contains(&"Abs".to_owned()), "{ops:?}");
        let fused = model.into_runnable().unwrap().run(tvec!(input)).unwrap();
        assert_eq!(fused[0].to_plain_array_view::<f32>().unwrap(), reference[0].to_plain_array_view::<f32>().unwrap());
    }
}
