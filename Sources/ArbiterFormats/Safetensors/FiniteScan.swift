// FiniteScan: finds NaN and infinities in stored weights straight from the mapped bytes, so that a corrupt
// checkpoint is refused at load time naming the file, the tensor and the element (instead of surfacing later
// as a non-finite activation at some hook).
//
// A float is NaN or infinite exactly when its exponent bits are all ones. With E the exponent mask and L its
// lowest bit, (bits & E) + L reaches the bit above the exponent only then (E + L = that bit; anything less
// stays below it), so a block is checked with and/add/or on integer vectors, which Swift vectorises (integer
// vector compares it does not, see DEVELOPERS.md); only a block that trips is scanned element by element.
//
// Cost at load, measured on the 2-core development machine (these kernels built -Ounchecked, one thread, file
// in the page cache, best of 5 per run over 3 runs, other jobs running; mmap + header parse + scan of every
// tensor): 200 MB of F32 12–22 ms (9–18 GB/s), 200 MB of BF16 10–19 ms; GoldenData/models/arbiter-main
// (14.8 MB F32) 2–8 ms, each other bundled model under 1 ms. Touching one byte per page of the same map costs
// 2.5 ms per 200 MB, so the scan runs at about memory speed. That is small next to loading and running a
// model, so Checkpoint scans at load. A file not yet in the page cache is read from disk by the scan instead of
// by the first forward pass, which reads every weight anyway.
import ArbiterTensor

public enum FiniteScan {
    /// Elements per block: checked with vector ops, then scalar only if the block holds a non-finite value.
    static let blockElements = 4096

    /// The index (row-major, into the flattened tensor) of the first NaN or ±infinity in `tensor`, or nil.
    public static func firstNonFinite(_ tensor: StoredTensor) -> Int? {
        switch tensor.dtype {
        case .float32: return first32(tensor.bytes, count: tensor.count)
        case .bfloat16: return first16(tensor.bytes, count: tensor.count, exponent: 0x7F80, low: 0x0080)
        case .float16: return first16(tensor.bytes, count: tensor.count, exponent: 0x7C00, low: 0x0400)
        }
    }

    /// The value at a non-finite element, for messages: "NaN", "+infinity" or "-infinity".
    public static func describe(_ tensor: StoredTensor, at index: Int) -> String {
        var value: Float = 0
        widenToFloat(tensor.dtype, tensor.bytes + index * tensor.dtype.byteSize, count: 1, into: &value)
        return value.isNaN ? "NaN" : value < 0 ? "-infinity" : "+infinity"
    }

    private static func first32(_ base: UnsafeRawPointer, count: Int) -> Int? {
        let exponent: UInt32 = 0x7F80_0000, low: UInt32 = 0x0080_0000, carry: UInt32 = 0x8000_0000
        let exponents = SIMD8<UInt32>(repeating: exponent), lows = SIMD8<UInt32>(repeating: low)
        var start = 0
        while start < count {
            let end = min(start + blockElements, count)
            var flags = SIMD8<UInt32>()
            var i = start
            while i + 8 <= end {
                flags |= (base.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self) & exponents) &+ lows
                i += 8
            }
            var tail: UInt32 = 0
            while i < end {
                tail |= (base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) & exponent) &+ low
                i += 1
            }
            if tail & carry != 0 || (flags & SIMD8(repeating: carry)) != .zero {
                for j in start..<end
                where base.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self) & exponent == exponent {
                    return j
                }
            }
            start = end
        }
        return nil
    }

    private static func first16(_ base: UnsafeRawPointer, count: Int, exponent: UInt16, low: UInt16) -> Int? {
        let carry: UInt16 = 0x8000
        let exponents = SIMD16<UInt16>(repeating: exponent), lows = SIMD16<UInt16>(repeating: low)
        var start = 0
        while start < count {
            let end = min(start + blockElements, count)
            var flags = SIMD16<UInt16>()
            var i = start
            while i + 16 <= end {
                flags |= (base.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self) & exponents) &+ lows
                i += 16
            }
            var tail: UInt16 = 0
            while i < end {
                tail |= (base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) & exponent) &+ low
                i += 1
            }
            if tail & carry != 0 || (flags & SIMD16(repeating: carry)) != .zero {
                for j in start..<end
                where base.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self) & exponent == exponent {
                    return j
                }
            }
            start = end
        }
        return nil
    }
}
