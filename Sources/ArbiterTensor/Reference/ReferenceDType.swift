// Reference dtype conversions, bit by bit from the IEEE-754 field layouts (no hardware conversion).
import Foundation

extension ReferenceKernels {
    /// Value of an IEEE binary16 bit pattern (1 sign, 5 exponent bits with bias 15, 10 mantissa bits).
    public static func float16Value(_ bits: UInt16) -> Double {
        decode(sign: bits >> 15, exponent: Int((bits >> 10) & 0x1F), mantissa: Int(bits & 0x3FF),
               exponentBits: 5, mantissaBits: 10)
    }

    /// Value of a bfloat16 bit pattern (1 sign, 8 exponent bits with bias 127, 7 mantissa bits).
    public static func bfloat16Value(_ bits: UInt16) -> Double {
        decode(sign: bits >> 15, exponent: Int((bits >> 7) & 0xFF), mantissa: Int(bits & 0x7F),
               exponentBits: 8, mantissaBits: 7)
    }

    /// Float32 → bfloat16 bits, rounding to nearest with ties to even, written out case by case: keep the high
    /// half of the bits and round up when the dropped low half is above one half, or exactly one half with an
    /// odd kept half (a carry may run into the exponent: the largest floats round to infinity).
    /// NaN stays NaN: its sign and top payload bits are kept and the quiet bit (0x0040) is set.
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let kept = UInt16(bits >> 16), dropped = bits & 0xFFFF
        if value.isNaN { return kept | 0x0040 }
        let roundUp = dropped > 0x8000 || (dropped == 0x8000 && kept & 1 == 1)
        return roundUp ? kept + 1 : kept
    }

    static func decode(sign: UInt16, exponent: Int, mantissa: Int, exponentBits: Int, mantissaBits: Int) -> Double {
        let bias = (1 << (exponentBits - 1)) - 1
        let magnitude: Double
        if exponent == (1 << exponentBits) - 1 {
            magnitude = mantissa == 0 ? .infinity : .nan
        } else if exponent == 0 {   // zero or subnormal: 0.m × 2^(1 − bias)
            magnitude = Double(mantissa) / Double(1 << mantissaBits) * pow(2, Double(1 - bias))
        } else {                    // normal: 1.m × 2^(e − bias)
            magnitude = (1 + Double(mantissa) / Double(1 << mantissaBits)) * pow(2, Double(exponent - bias))
        }
        return sign == 1 ? -magnitude : magnitude
    }
}
