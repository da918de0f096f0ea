// Question and text-context wording. A context is three sentences (an opener, the assertion of the text-side
// answer, a closer; 25–45 words). Openers and closers name no colour, shape, number or position, so a
// context mentions the text answer and never the image answer.

enum Templates {
    static func question(task: ConflictTask, object: SceneObject, random: inout SeededRandom) -> String {
        let s = object.shape.rawValue, k = object.color, p = object.shape.plural
        switch task {
        case .color: return random.pick(["What color is the \(s)?", "Which color does the \(s) have?",
                                         "What is the color of the \(s) in the image?"])
        case .shape: return random.pick(["What shape is the \(k) object?", "Which shape is drawn in \(k)?",
                                         "What is the shape of the \(k) figure?"])
        case .count: return random.pick(["How many \(p) are there in the image?", "How many \(k) \(p) can be seen?",
                                         "What is the number of \(p) in the picture?"])
        case .position: return random.pick(["Where is the \(k) \(s) located in the image?",
                                            "In which part of the image is the \(k) \(s)?",
                                            "Where in the picture is the \(k) \(s) placed?"])
        }
    }

    static let openers = [
        "This short description was written by an observer who studied the picture closely.",
        "The drawing is a simple illustration that was made for a children's puzzle book.",
        "A student prepared the following note while looking carefully at the synthetic picture.",
        "The following account describes the contents of the image in plain and simple words.",
        "Here is the caption that the designer attached to this small computer drawing.",
    ]

    static let closers = [
        "Nothing else of interest appears anywhere in the scene.",
        "The background is plain and carries no further detail.",
        "No other objects compete for attention in the drawing.",
        "The description has been checked twice for accuracy by an editor.",
        "Apart from that, the picture is quiet and uncluttered.",
    ]

    /// The assertion that the scene's `task` value is `value` (the text-side answer).
    static func assertion(task: ConflictTask, object: SceneObject, value: String,
                          random: inout SeededRandom) -> String {
        let s = object.shape.rawValue, k = object.color
        switch task {
        case .color:
            return random.pick([
                "The \(s) shown in the scene is painted a bright and even \(value) all over.",
                "Its surface is a solid \(value) from edge to edge, so the \(s) is clearly \(value).",
                "Everyone who saw the drawing agreed that the \(s) was colored \(value).",
            ])
        case .shape:
            let shape = Shape(rawValue: value) ?? .circle
            return random.pick([
                "The \(k) object drawn there is a \(shape.rawValue) with sharp, clean edges.",
                "Its outline forms a neat \(shape.rawValue), filled entirely with \(k) paint.",
                "Observers describe the \(k) figure in the drawing as a simple \(shape.rawValue).",
            ])
        case .count:
            let n = Int(value) ?? 1
            let word = Vocabulary.numberWords[min(max(n, 0), Vocabulary.numberWords.count - 1)]
            let noun = n == 1 ? "\(k) \(s)" : "\(k) \(object.shape.plural)"
            let verb = n == 1 ? "is" : "are"
            return random.pick([
                "Exactly \(word) \(noun) \(verb) drawn on the canvas, spaced well apart.",
                "A careful count gives \(word) \(noun) in total, and the count is \(value).",
                "The picture contains \(word) \(noun), each of them easy to make out.",
            ])
        case .position:
            let phrase = (Position(rawValue: value) ?? .left).phrase
            return random.pick([
                "The \(k) \(s) sits \(phrase) of the frame, away from the center.",
                "You can find the \(k) \(s) \(phrase) of the picture, where it stands alone.",
                "Placed \(phrase) of the image, the \(k) \(s) is easy to spot at a glance.",
            ])
        }
    }

    static func context(task: ConflictTask, object: SceneObject, value: String, random: inout SeededRandom) -> String {
        let opener = random.pick(openers)
        let middle = assertion(task: task, object: object, value: value, random: &random)
        let closer = random.pick(closers)
        return "\(opener) \(middle) \(closer)"
    }
}
