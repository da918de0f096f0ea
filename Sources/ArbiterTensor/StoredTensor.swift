// StoredTensor: a read-only checkpoint tensor kept in its stored dtype (zero-copy from a memory map).

/// A read-only tensor in its stored dtype. Its bytes live in `owner` (a memory-mapped file or an array),
/// which the value keeps alive. F16/BF16 data are widened to Float32 only when used, in blocks.
public struct StoredTensor: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Start of the element bytes; valid while `owner` lives.
    public let bytes: UnsafeRawPointer
    private let owner: AnyObject
    /// Whether `linearInto` may multiply by this (BF16) weight in bf16 arithmetic (activations rounded to bf16,
    /// f32 accumulation) when the CPU has AVX512-BF16. Set by `forBFloat16Compute()`; off by default.
    public let computesInBFloat16: Bool

    public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawPointer, owner: AnyObject,
                computesInBFloat16: Bool = false) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
        self.computesInBFloat16 = computesInBFloat16
    }

    /// A Float32 tensor held in memory (for weights built in tests or derived at load time).
    public init(name: String, _ tensor: Tensor) {
        let box = FloatBox(tensor.scalars)
        self.init(name: name, dtype: .float32, shape: tensor.shape, bytes: UnsafeRawPointer(box.pointer), owner: box)
    }

    public var count: Int { shape.reduce(1, *) }
    public var rows: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    public var columns: Int { shape.last ?? 1 }

    /// The whole tensor widened to Float32.
    public func toTensor() -> Tensor {
        var scalars = [Float](repeating: 0, count: count)
        scalars.withUnsafeMutableBufferPointer { widenToFloat(dtype, bytes, count: count, into: $0.baseAddress!) }
        return Tensor(shape: shape, scalars: scalars)
    }

    /// Widens rows `range` of the rank-2 view into `destination` (room for `range.count * columns` floats).
    public func widenRows(_ range: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        widenToFloat(dtype, bytes + range.lowerBound * columns * dtype.byteSize,
                     count: range.count * columns, into: destination)
    }

    /// A Float32 pointer to the data when it is stored as aligned F32 (the zero-copy fast path).
    public var float32Pointer: UnsafePointer<Float>? {
        guard dtype == .float32, Int(bitPattern: bytes) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return bytes.assumingMemoryBound(to: Float.self)
    }
}

extension StoredTensor {
    /// This tensor for bf16 compute: BF16 data as they are (same bytes), F32 and F16 data rounded to bf16 once
    /// (nearest even, NaN kept NaN, as `torch.Tensor.to(torch.bfloat16)`) into a heap copy. Nil when rounding
    /// turns a finite value infinite (magnitudes from 3.3961e38 on), which bf16 cannot hold.
    public func forBFloat16Compute() -> StoredTensor? {
        if dtype == .bfloat16 {
            return StoredTensor(name: name, dtype: .bfloat16, shape: shape, bytes: bytes, owner: owner,
                                computesInBFloat16: true)
        }
        let box = BFloat16Box(count: count)
        let chunk = 1 << 16
        var widened = [Float](repeating: 0, count: min(chunk, count))
        var start = 0, finite = true
        while start < count {
            let end = min(start + chunk, count)
            widened.withUnsafeMutableBufferPointer { w in
                widenToFloat(dtype, bytes + start * dtype.byteSize, count: end - start, into: w.baseAddress!)
                for i in 0..<(end - start) {
                    let bits = floatToBFloat16(w[i])
                    if w[i].isFinite, !bfloat16ToFloat(bits).isFinite { finite = false }
                    box.pointer[start + i] = bits
                }
            }
            start = end
        }
        guard finite else { return nil }
        return StoredTensor(name: name, dtype: .bfloat16, shape: shape, bytes: UnsafeRawPointer(box.pointer),
                            owner: box, computesInBFloat16: true)
    }
}

extension StoredTensor {
    /// `tensor` rounded to bf16 (nearest even) into a heap copy: a BF16 weight as a checkpoint stores it, widened
    /// when used unless `computesInBFloat16` (for timing the products of a 16-bit checkpoint, `VerifyPlan`'s
    /// calibration). Nil when a finite value rounds to infinity.
    public static func bfloat16(name: String, _ tensor: Tensor, computesInBFloat16: Bool = false) -> StoredTensor? {
        guard let rounded = StoredTensor(name: name, tensor).forBFloat16Compute() else { return nil }
        return StoredTensor(name: name, dtype: .bfloat16, shape: rounded.shape, bytes: rounded.bytes,
                            owner: rounded.owner, computesInBFloat16: computesInBFloat16)
    }
}

/// Owns bf16 data rounded at load (`forBFloat16Compute`) at a stable address.
final class BFloat16Box: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt16>
    init(count: Int) {
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { pointer.deallocate() }
}

/// Owns a heap copy of Float32 data at a stable address.
final class FloatBox: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(values.count, 1))
        values.withUnsafeBufferPointer {
            if let b = $0.baseAddress { pointer.initialize(from: b, count: values.count) }
        }
    }
    deinit { pointer.deallocate() }
}
