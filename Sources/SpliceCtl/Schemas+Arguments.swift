import ArgumentParser

// The API's enumerations, taken as command line values by their raw names.
extension Components.Schemas.DirectionSelection: ExpressibleByArgument {}
extension Components.Schemas.FailurePolicy: ExpressibleByArgument {}
extension Components.Schemas.SlowPolicy: ExpressibleByArgument {}
extension Components.Parameters.CapturePoints: ExpressibleByArgument {}
