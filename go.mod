module github.com/unifiedms/ums

go 1.26.8

require (
	github.com/rabbitmq/amqp091-go v1.16.0
	gopkg.in/yaml.v3 v3.0.1
)
