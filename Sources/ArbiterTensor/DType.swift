// Storage dtypes of checkpoint tensors and their conversion to Float32.

/// The element types Arbiter reads from checkpoints (safetensors dtype strings).
public enum DType: String, Sendable, CaseIterable {
    case float32 = "F32"
    case float16 = "F16"
    case bfloat16 = "BF16"

    public var byteSize: Int {
        switch self {
        case .float32: return 4
        case .float16, .bfloat16: return 2
        }
    }
}

/// bfloat16 → Float32: the bf16 bits are the high half of the f32 bits (exact).
@inline(__always)
public func bfloat16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Float32 → bfloat16 with round-to-nearest-even (as torch). A NaN stays a quiet NaN with its sign and top
/// payload bits (torch's scalar path returns 0x7FC0 and its vectorized path 0xFFFF: any NaN pattern is fine).
@inline(__always)
public func floatToBFloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// IEEE half → Float32 (exact; subnormals, infinities and NaN included).
@inline(__always)
public func float16ToFloat(_ bits: UInt16) -> Float {
    #if arch(x86_64) || arch(arm64)
    return Float(Float16(bitPattern: bits))
    #else
    let sign = UInt32(bits & 0x8000) << 16
    var exponent = Int32((bits >> 10) & 0x1F)
    var mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        exponent = 1
        while mantissa & 0x400 == 0 { mantissa <<= 1; exponent -= 1 }
        mantissa &= 0x3FF
    }
    return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    #endif
}

/// Widens `count` stored elements starting at `source` into Float32 at `destination`.
public func widenToFloat(_ dtype: DType, _ source: UnsafeRawPointer, count: Int,
                         into destination: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .float32:
        // Unaligned-safe copy: mmap'd safetensors data is only byte-aligned in general.
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
    case .bfloat16:
        for i in 0..<count {
            destination[i] = bfloat16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        }
    case .float16:
        for i in 0..<count {
            destination[i] = float16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        }
    }
}
