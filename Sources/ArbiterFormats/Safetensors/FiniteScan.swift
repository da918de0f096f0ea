// FiniteScan: finds NaN and infinities in stored weights straight from the mapped bytes, so that a corrupt
// checkpoint is refused at load time naming the file, the tensor and the element (instead of surfacing later
// as a non-finite activation at some hook).
//
// A float is NaN or infinite exactly when its exponent bits are all ones. With E the exponent mask and L its
// lowest bit, (bits & E) + L reaches the bit above the exponent only then (E + L = that bit; anything less
// stays below it), so a block is checked with and/add/or on integer vectors, which Swift vectorises (integer
// vector compares it does not, see DEVELOPERS.md); only a block that trips is scanned element by element.
//
// Cost at load, measured on the shared 2-core development machine (this kernel built -Ounchecked -wmo in a
// harness, one thread, files in the page cache, best of 5, mmap + header parse + scan of every tensor; the
// spread is the machine's load from other jobs): 200 MB of F32 12–56 ms, 200 MB of BF16 10–56 ms, of which
// mapping the pages alone (one load per page) takes 2.5–33 ms; GoldenData/models/arbiter-main (14.8 MB F32)
// 2–8 ms, each other bundled model under 1 ms, next to 60 ms for `arbiter run` on arbiter-main. So Checkpoint
// scans at load. A file not yet in the page cache is read from disk by the scan instead of by the first
// forward pass, which reads every weight anyway.
import ArbiterTensor

public enum FiniteScan {
    /// Elements per block: checked with vector ops, then scalar only if the block holds a non-finite value.
    static let blockElements = 4096

    /// The index (row-major, into the flattened tensor) of the first NaN or ±infinity in `tensor`, or nil.
    public static func firstNonFinite(_ tensor: StoredTensor) -> Int? {
        let (bytes, count) = (tensor.bytes, tensor.count)
        switch tensor.dtype {
        case .float32: return first(bytes, count, exponent: 0x7F80_0000 as UInt32, low: 0x0080_0000, SIMD8<UInt32>.self)
        case .bfloat16: return first(bytes, count, exponent: 0x7F80 as UInt16, low: 0x0080, SIMD16<UInt16>.self)
        case .float16: return first(bytes, count, exponent: 0x7C00 as UInt16, low: 0x0400, SIMD16<UInt16>.self)
        }
    }

    /// The value at a non-finite element, for messages: "NaN", "+infinity" or "-infinity".
    public static func describe(_ tensor: StoredTensor, at index: Int) -> String {
        var value: Float = 0
        widenToFloat(tensor.dtype, tensor.bytes + index * tensor.dtype.byteSize, count: 1, into: &value)
        return value.isNaN ? "NaN" : value < 0 ? "-infinity" : "+infinity"
    }

    /// The first element of `count` `Lanes.Scalar`s at `base` whose `exponent` bits are all ones, or nil.
    /// Specialised for each call above (the package's release build optimises the whole module).
    private static func first<Lanes: SIMD>(_ base: UnsafeRawPointer, _ count: Int, exponent: Lanes.Scalar,
                                           low: Lanes.Scalar, _ lanes: Lanes.Type) -> Int?
    where Lanes.Scalar: FixedWidthInteger & UnsignedInteger {
        let size = MemoryLayout<Lanes.Scalar>.stride, width = Lanes.scalarCount
        let carry = exponent &+ low
        let exponents = Lanes(repeating: exponent), lows = Lanes(repeating: low), carries = Lanes(repeating: carry)
        var start = 0
        while start < count {
            let end = min(start + blockElements, count)
            var flags = Lanes.zero
            var i = start
            while i + width <= end {
                flags |= (base.loadUnaligned(fromByteOffset: size * i, as: Lanes.self) & exponents) &+ lows
                i += width
            }
            var tail: Lanes.Scalar = 0
            while i < end {
                tail |= (base.loadUnaligned(fromByteOffset: size * i, as: Lanes.Scalar.self) & exponent) &+ low
                i += 1
            }
            if tail & carry != 0 || flags & carries != .zero {
                for j in start..<end
                where base.loadUnaligned(fromByteOffset: size * j, as: Lanes.Scalar.self) & exponent == exponent {
                    return j
                }
            }
            start = end
        }
        return nil
    }
}
