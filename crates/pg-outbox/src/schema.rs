// @generated automatically by Diesel CLI.

diesel::table! {
    inbox (consumer, event_id) {
        consumer -> Text,
        event_id -> Uuid,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_id -> Uuid,
        aggregate_type -> Text,
        aggregate_id -> Int8,
        event_type -> Text,
        payload -> Jsonb,
        trace_context -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        pending_deliveries -> Int4,
    }
}

diesel::table! {
    outbox_deliveries (outbox_id, destination) {
        outbox_id -> Int8,
        destination -> Text,
        aggregate_type -> Text,
        aggregate_id -> Int8,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_token -> Nullable<Uuid>,
        lease_expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox_destinations (name) {
        name -> Text,
        created_at -> Timestamptz,
        event_types -> Nullable<Array<Text>>,
    }
}

diesel::joinable!(outbox_deliveries -> outbox (outbox_id));
diesel::joinable!(outbox_deliveries -> outbox_destinations (destination));

diesel::allow_tables_to_appear_in_same_query!(
    inbox,
    outbox,
    outbox_deliveries,
    outbox_destinations,
);
