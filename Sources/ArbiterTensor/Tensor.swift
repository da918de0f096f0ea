// Tensor: a dense, row-major Float32 array with a shape. Activations are always Float32.

/// A dense row-major Float32 tensor. Value semantics (copy-on-write through `Array`).
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    /// Creates a tensor; `scalars.count` must equal the product of `shape` (a programming error otherwise;
    /// input paths validate with `Tensor(validatingShape:scalars:)`).
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// Creates a tensor from untrusted data, throwing instead of trapping on a shape/count mismatch.
    public init(validatingShape shape: [Int], scalars: [Float], source: String = "tensor") throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidShape("\(source): negative dimension in shape \(shape)")
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
        }
        guard !overflow, count == scalars.count else {
            throw TensorError.invalidShape("\(source): shape \(shape) does not match \(scalars.count) elements")
        }
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// Creates a tensor whose every element `fill` writes (e.g. a BLAS product with β = 0, which by the BLAS
    /// contract never reads its output): skips zero-filling memory that is overwritten at once.
    public init(shape: [Int], writingEveryElement fill: (UnsafeMutablePointer<Float>) -> Void) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let count = shape.reduce(1, *)
        guard count > 0 else {
            self.init(shape: shape, scalars: [])
            return
        }
        let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(buffer.baseAddress!)
            initialized = count
        }
        self.init(shape: shape, scalars: scalars)
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// Rows and columns of a rank-2 view that keeps the last dimension (`[a, b, c]` → `[a*b, c]`).
    public var rows: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    public var columns: Int { shape.last ?? 1 }

    /// Same data, new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Row `i` of the rank-2 view.
    public func row(_ i: Int) -> ArraySlice<Float> {
        scalars[(i * columns)..<((i + 1) * columns)]
    }

    /// Rows `range` of the rank-2 view as a new `[range.count, columns]` tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        Tensor(shape: [range.count, columns],
               scalars: Array(scalars[(range.lowerBound * columns)..<(range.upperBound * columns)]))
    }

    /// Elements `range` of the first axis (tokens, for `[T, …]` tensors) as a new tensor of shape
    /// `[range.count] + shape[1...]`.
    public func slicingTokens(_ range: Range<Int>) -> Tensor {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, scalars: Array(scalars[(range.lowerBound * per)..<(range.upperBound * per)]))
    }

    /// Overwrites elements `range` of the first axis with `part` (shape `[range.count] + shape[1...]`).
    public mutating func replaceTokens(_ range: Range<Int>, with part: Tensor) {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        precondition(part.count == range.count * per, "replaceTokens: \(part.shape) into rows \(range) of \(shape)")
        scalars.replaceSubrange((range.lowerBound * per)..<(range.upperBound * per), with: part.scalars)
    }

    /// Whether every element is finite.
    public var isFinite: Bool { scalars.allSatisfy { $0.isFinite } }

    /// Index of the first non-finite element, if any.
    public var firstNonFiniteIndex: Int? { scalars.firstIndex { !$0.isFinite } }
}

public enum TensorError: Error, CustomStringConvertible, Equatable {
    case invalidShape(String)
    case shapeMismatch(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidShape(let m), .shapeMismatch(let m), .unsupported(let m): return m
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(6).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape)) [\(head)\(scalars.count > 6 ? ", …" : "")]"
    }
}
