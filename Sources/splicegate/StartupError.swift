/// A reason the process cannot start, printed as is before exiting with status 2.
struct StartupError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
